"""ScheduleSpec: exact per-step LR, text/dict round trips, clear errors, Luo et al. 2025."""

from __future__ import annotations

import numpy as np
import pytest

from fitting.schedules import ScheduleSpec
from store.errors import BadInputError
from tests.published import LUO_25M


def test_warmup_is_linear_from_zero_and_step0_gets_zero() -> None:
    spec = ScheduleSpec("constant", peak_lr=1e-3, total_steps=100, warmup_steps=10)
    lr = spec.lr(np.arange(0, 12))
    np.testing.assert_allclose(lr[:11], 1e-3 * np.arange(11) / 10)
    assert lr[0] == 0.0 and lr[10] == 1e-3 and lr[11] == 1e-3
    # Without warmup, step 0 already runs at the peak.
    assert ScheduleSpec("constant", peak_lr=1e-3, total_steps=5).lr(0) == 1e-3


def test_cosine_and_linear_hit_peak_then_final() -> None:
    cos = ScheduleSpec("cosine", peak_lr=1.0, total_steps=110, warmup_steps=10, final_lr=0.1)
    lr = cos.lr(np.array([10, 60, 110, 500]))
    np.testing.assert_allclose(lr, [1.0, 0.55, 0.1, 0.1])
    lin = ScheduleSpec("linear", peak_lr=1.0, total_steps=100, final_lr=0.0)
    np.testing.assert_allclose(lin.lr(np.array([0, 25, 100, 101])), [1.0, 0.75, 0.0, 0.0])


@pytest.mark.parametrize(
    ("shape", "mid"),
    [("linear", 0.55), ("cosine", 0.55), ("exponential", np.sqrt(0.1))],
)
def test_wsd_shapes(shape: str, mid: float) -> None:
    spec = ScheduleSpec(
        "wsd",
        peak_lr=1.0,
        total_steps=200,
        warmup_steps=20,
        final_lr=0.1,
        decay_steps=100,
        decay_shape=shape,
    )
    np.testing.assert_allclose(
        spec.lr(np.array([20, 100, 150, 200, 300])), [1.0, 1.0, mid, 0.1, 0.1]
    )


def test_multistep_milestone_step_takes_new_lr() -> None:
    spec = ScheduleSpec("multistep", peak_lr=1.0, total_steps=100, milestones=(30, 60), gamma=0.5)
    np.testing.assert_allclose(
        spec.lr(np.array([0, 29, 30, 59, 60, 99])), [1, 1, 0.5, 0.5, 0.25, 0.25]
    )


@pytest.mark.parametrize(
    "text",
    [
        "cosine:peak=3e-4,warmup=100,total=1000,final=3e-5",
        "constant:peak=0.001,total=50",
        "linear:peak=0.01,total=500,warmup=5,final=0.0",
        "wsd:peak=0.0003,total=24000,warmup=2160,final=3e-05,decay=4000,shape=exponential",
        "multistep:peak=0.0003,total=16000,warmup=2160,milestones=8000;12000,gamma=0.3",
    ],
)
def test_text_dict_and_json_round_trip(text: str) -> None:
    spec = ScheduleSpec.parse(text)
    assert ScheduleSpec.parse(str(spec)) == spec
    assert ScheduleSpec.from_dict(spec.to_dict()) == spec
    assert ScheduleSpec.from_json(spec.to_json()) == spec
    assert ScheduleSpec.coerce(spec.to_json()) == spec
    steps = np.arange(spec.total_steps + 1)
    np.testing.assert_array_equal(ScheduleSpec.parse(str(spec)).lr(steps), spec.lr(steps))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("cosin:peak=1,total=10", "kind 'cosin'"),
        ("cosine:peak=-1,total=10", "peak_lr must be > 0"),
        ("cosine:peak=abc,total=10", "peak_lr must be a number"),
        ("cosine:peak=1,total=10.5", "whole number"),
        ("cosine:peak=1,total=10,warmup=20", "warmup_steps (20) exceeds"),
        ("cosine:peak=1,total=10,colour=red", "unknown field 'colour'"),
        ("cosine:peak=1,total", "expected key=value"),
        ("cosine:peak=1", "required"),
        ("wsd:peak=1,total=10", "decay_steps"),
        ("wsd:peak=1,total=10,decay=5,shape=wavy", "decay_shape 'wavy'"),
        ("wsd:peak=1,total=10,decay=5,shape=exponential", "final_lr > 0"),
        ("multistep:peak=1,total=10", "at least one milestone"),
        ("multistep:peak=1,total=10,milestones=5;3", "strictly increasing"),
        ("", "empty"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_specs_raise_clear_errors(text: str, needle: str) -> None:
    with pytest.raises(BadInputError) as info:
        ScheduleSpec.parse(text)
    assert needle in str(info.value)


def test_negative_steps_are_rejected() -> None:
    with pytest.raises(BadInputError, match="steps must be finite"):
        ScheduleSpec("constant", peak_lr=1.0, total_steps=5).lr(np.array([-1]))


def test_luo2025_schedules_match_the_logged_lr() -> None:
    """The rebuilt schedules reproduce the sparse `lr` column of every 25M curve."""
    files = sorted(LUO_25M.glob("*.csv"))
    assert len(files) == 9
    for path in files:
        data = np.genfromtxt(path, delimiter=",", names=True)
        spec = ScheduleSpec.luo2025(path.name)
        np.testing.assert_allclose(spec.lr(data["step"]), data["lr"], rtol=1e-9, err_msg=path.name)


def test_luo2025_names() -> None:
    spec = ScheduleSpec.luo2025("wsdcon_9")
    assert spec.kind == "multistep" and spec.milestones == (8000,)
    assert spec.lr(np.array([8000]))[0] == pytest.approx(9e-5)
    with pytest.raises(BadInputError, match="not a Luo"):
        ScheduleSpec.luo2025("step_decay")
