"""multi_power's loss drop on threads: the parts give the whole exactly, fits are the same
on one thread and on several, and bootstrap workers get neither the caches nor threads."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from fitting import threads
from fitting.engine import fit
from fitting.laws import multi_power
from fitting.laws.curve_support import RunLR, loss_drop_terms
from fitting.laws.multi_power import MultiPower
from fitting.schedules import ScheduleSpec

WSD = "wsd:peak=1e-3,warmup=100,total=3000,final=1e-4,decay=800,shape=exponential"
PARAMS = [np.array([v, v * 1.2]) for v in (400.0, 2.0, 0.6, 0.6)]  # B, C, beta, gamma x 2


def _terms():
    spec = ScheduleSpec.parse(WSD)
    run = RunLR("r", 0, spec.dense(), spec.warmup_steps, "schedule")
    return loss_drop_terms(run, np.unique(np.linspace(1, 3000, 97).round()).astype(int))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 97, 500])
def test_parts_cover_every_point_once_and_give_the_whole_exactly(n: int) -> None:
    terms = _terms()
    whole, grad = terms.drop(*PARAMS, grad=True)
    parts = terms.split(n)
    assert len(parts) <= min(n, 97) and (len(parts) == n or n > 7)
    assert sum(p.offsets.size for p in parts) == terms.offsets.size
    assert sum(p.weight.size for p in parts) == terms.weight.size
    done = [p.drop(*PARAMS, grad=True) for p in parts]
    np.testing.assert_array_equal(np.concatenate([d[0] for d in done], axis=1), whole)
    np.testing.assert_array_equal(np.concatenate([d[1] for d in done], axis=1), grad)
    if 1 < n < 97:  # about equal work: no part more than twice its share
        assert max(p.weight.size for p in parts) < 2 * terms.weight.size / len(parts)


def test_terms_travel_to_workers_without_their_caches() -> None:
    terms = _terms()
    terms.drop(*PARAMS, grad=True)
    terms.split(2)
    assert terms._memo and terms._parts
    copy = pickle.loads(pickle.dumps(terms))
    assert copy._memo == {} and copy._parts == {}
    np.testing.assert_array_equal(copy.drop(*PARAMS)[0], terms.drop(*PARAMS)[0])


def test_a_fit_is_the_same_on_one_thread_and_on_several(monkeypatch: pytest.MonkeyPatch) -> None:
    truth, frame = MultiPower().example(np.random.default_rng(3))
    # The example is small: thread it anyway, so this test runs the threaded path.
    monkeypatch.setattr(multi_power, "_THREADED_TERMS", 0)
    results = {}
    for n in ("1", "3"):
        monkeypatch.setenv("SCALINGLAB_FIT_THREADS", n)
        assert threads.count() == int(n)
        results[n] = fit("multi_power", frame, intervals="sandwich")
    one, three = results["1"], results["3"]
    assert one.params == three.params
    assert one.uncertainty.get("between_run_sd") == three.uncertainty.get("between_run_sd")
    assert one.params["L0"] == pytest.approx(truth["L0"], rel=0.02)  # a real fit


def test_thread_count_from_the_environment_and_single_in_a_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCALINGLAB_FIT_THREADS", "junk")
    assert 1 <= threads.count() <= threads.MAX_DEFAULT
    monkeypatch.setenv("SCALINGLAB_FIT_THREADS", "2")
    assert threads.count() == 2
    monkeypatch.setitem(threads._STATE, "limit", None)
    threads.single()
    try:
        assert threads.count() == 1
    finally:
        threads._STATE["limit"] = None
    assert threads.map_parts(lambda v: v * 2, [1, 2, 3]) == [2, 4, 6]


def _in_child() -> tuple[bool, list[int]]:
    return threads._STATE["pool"] is None, threads.map_parts(abs, [-3, -4])


def test_a_forked_child_gets_a_pool_of_its_own() -> None:
    """A child forked after a fit used the pool has the pool object but none of its
    threads (work there would wait on them forever, once they had gone idle): it starts
    without one and makes its own."""
    import multiprocessing

    assert threads.map_parts(abs, [-1, -2]) == [1, 2]
    assert threads._STATE["pool"] is not None
    with multiprocessing.get_context("fork").Pool(1) as pool:
        fresh, out = pool.apply(_in_child)
    assert fresh and out == [3, 4]
