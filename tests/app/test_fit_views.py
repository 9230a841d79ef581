"""The Fit page's views without a browser: which view each law gets (from its class), the
IsoFLOP slices, frontier, predicted-vs-observed and residual frames against known truth,
and the background runner's cancel and replacement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.dashboard import fitframes, fitrunner, fitview
from fitting import LAWS, fit


def test_each_law_gets_its_view_from_what_it_declares() -> None:
    for name, law in LAWS.items():
        kind = fitview.view_kind(law)
        if law.kind == "curves":
            assert kind == "curves", name
        elif {"params", "tokens"} <= set(law.sizes):
            assert kind == "isoflop", name
        else:
            assert kind == "size", name
    assert fitview.view_kind(LAWS["chinchilla"]) == "isoflop"
    assert fitview.view_kind(LAWS["multi_power"]) == "curves"
    assert fitview.view_kind(LAWS["power_law"]) == "size"
    assert fitview.has_frontier(LAWS["kaplan"]) and not fitview.has_frontier(LAWS["multilingual"])


@pytest.fixture(scope="module")
def isoflop_fit() -> tuple[object, pd.DataFrame, dict[str, float]]:
    """A chinchilla law sampled on five exact budgets, 7 sizes each (0.2% noise)."""
    truth = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}
    rows = []
    for c in (1e18, 1e19, 1e20, 1e21, 1e22):
        n_opt = LAWS["chinchilla"].compute_optimum(truth, np.array([c]))[0][0]
        for n in n_opt * np.geomspace(0.2, 5.0, 7):
            rows.append({"run": f"C{c:.0e}-N{n:.3g}", "params": n, "tokens": c / (6 * n)})
    frame = pd.DataFrame(rows)
    theta = np.array([list(truth.values())])
    law = LAWS["chinchilla"]
    clean = law.predict(theta, law.prepare(frame, for_fit=False))[0]
    frame["loss"] = clean * np.exp(np.random.default_rng(0).normal(0, 0.002, len(frame)))
    return fit("chinchilla", frame, bootstrap=60), frame, truth


def test_isoflop_slices_group_the_budgets_and_their_curves_go_through_the_points(
    isoflop_fit: tuple[object, pd.DataFrame, dict[str, float]],
) -> None:
    result, frame, _ = isoflop_fit
    slices, notes = fitframes.isoflop_slices(result, frame)
    assert notes["grouping"] == "exact" and notes["n_budgets"] == 5 and len(slices) == 5
    for s in slices:
        assert len(s.points) == 7
        c = 6 * s.curve["params"] * s.curve["tokens"]
        np.testing.assert_allclose(c, s.flops, rtol=1e-9)  # the curve keeps C fixed
        on_curve = np.interp(np.log(s.points["params"]), np.log(s.curve["params"]), s.curve["loss"])
        assert np.max(np.abs(on_curve / s.points["loss"] - 1)) < 0.01
        assert s.optimum is not None  # the law's optimum is inside the budget's sizes
        assert s.points["params"].min() < s.optimum[0] < s.points["params"].max()


def test_the_frontier_band_holds_the_true_optimum(
    isoflop_fit: tuple[object, pd.DataFrame, dict[str, float]],
) -> None:
    result, frame, truth = isoflop_fit
    slices, _ = fitframes.isoflop_slices(result, frame)
    front = fitframes.frontier(result, frame, slices=slices)
    true_n = LAWS["chinchilla"].compute_optimum(truth, front.flops)[0]
    inside = (front.lo <= true_n) & (true_n <= front.hi)
    assert inside[front.flops <= front.max_seen].all()
    assert (front.lo <= front.n_opt).all() and (front.n_opt <= front.hi).all()
    assert front.band_method.startswith("bootstrap percentiles")
    assert len(front.observed) == 5  # every budget's lowest loss is inside its sizes


def test_predicted_observed_and_residuals_line_up_with_the_fit(
    isoflop_fit: tuple[object, pd.DataFrame, dict[str, float]],
) -> None:
    result, frame, _ = isoflop_fit
    held = np.zeros(len(frame), bool)
    held[:3] = True
    po = fitframes.predicted_observed(result, frame, held)
    np.testing.assert_allclose(po["predicted"], result.predict(frame))
    assert po["held_out"].sum() == 3
    res = fitframes.residual_frame(result, frame)
    assert [c for c in res.columns if c not in ("run", "residual")] == ["params", "tokens", "flops"]
    np.testing.assert_allclose(res["residual"], result.residuals)
    np.testing.assert_allclose(res["flops"], 6 * frame["params"] * frame["tokens"])


def test_a_new_fit_cancels_the_running_one() -> None:
    rng = np.random.default_rng(0)
    n = np.geomspace(1e5, 1e8, 7)
    data = pd.DataFrame(
        {
            "run": [f"m{i}" for i in range(7)],
            "split": "train",
            "step": 1,
            "params": n,
            "loss": (2 + (1e4 / n) ** 0.3) * np.exp(rng.normal(0, 0.005, 7)),
        }
    )
    selection = {"runs": None, "reduce": "final"}
    slow = fitrunner.start(None, "p", "power_law", selection, {"bootstrap": 5000}, data)
    quick = fitrunner.start(None, "p", "power_law", selection, {"bootstrap": 20}, data, slow)
    assert slow.join(120) and quick.join(120)
    assert slow.snapshot().state == "cancelled"
    done = quick.snapshot()
    assert done.state == "done" and done.final and done.result.method == "bootstrap"
    assert done.first_s is not None and done.first_s <= done.elapsed_s


def _power_law_points() -> pd.DataFrame:
    n = np.geomspace(1e5, 1e8, 7)
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "run": [f"m{i}" for i in range(7)],
            "split": "train",
            "step": 1,
            "params": n,
            "loss": (2 + (1e4 / n) ** 0.3) * np.exp(rng.normal(0, 0.005, 7)),
        }
    )


def test_a_fit_no_page_looks_at_cancels_itself() -> None:
    """A closed tab stops polling: its fit ends instead of running its whole bootstrap."""
    selection = {"runs": None, "reduce": "final"}
    options = {"bootstrap": 1_000_000}  # hours of refits, were it left to finish
    run = fitrunner.start(None, "p", "power_law", selection, options, _power_law_points(),
                          abandon_after_s=0.0)  # fmt: skip
    assert run.join(120)
    snap = run.snapshot()
    assert snap.state == "cancelled" and snap.abandoned and run.cancel_event.is_set()


def test_each_look_from_the_page_keeps_a_fit_alive() -> None:
    run = fitrunner.FitRun(
        "p", "power_law", {}, {}, _power_law_points(), None, abandon_after_s=60.0
    )  # fmt: skip (never started: the flag alone)
    run._seen -= 61.0  # a minute and more without a look
    run.snapshot()  # the page looks
    assert not run.is_set() and not run.snapshot().abandoned
    run._seen -= 61.0
    assert run.is_set() and run.snapshot().abandoned
