"""The figure builders, tested directly: axes, smoothing, bands, reference lines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.dashboard import figures


def _curves() -> pd.DataFrame:
    rows = []
    for run, scale in (("small", 1.0), ("big", 0.8)):
        for split in ("train", "eval"):
            for step in range(1, 51):
                rows.append(
                    {
                        "run": run,
                        "split": split,
                        "step": step,
                        "tokens": step * 1000.0,
                        "loss": scale * (2.0 + 3.0 / step) + 0.01 * np.sin(step),
                    }
                )
    return pd.DataFrame(rows)


def test_ema_debiased_starts_at_first_value_and_tracks_constant() -> None:
    out = figures.ema_debiased([5.0, 5.0, 5.0], 0.9)
    np.testing.assert_allclose(out, [5.0, 5.0, 5.0])
    # Without the debiasing the first value would be 0.5, dragged toward zero.
    assert figures.ema_debiased([5.0, 1.0], 0.9)[0] == pytest.approx(5.0)


def test_ema_debiased_skips_nans_and_zero_smoothing_is_identity() -> None:
    out = figures.ema_debiased([np.nan, 2.0, np.nan, 4.0], 0.5)
    assert np.isnan(out[0])
    assert out[1] == pytest.approx(2.0)
    assert out[2] == pytest.approx(2.0)
    np.testing.assert_allclose(figures.ema_debiased([1.0, 2.0, 3.0], 0.0), [1, 2, 3])


def test_curves_figure_log_axes_and_faded_raw_behind_smoothed() -> None:
    fig = figures.curves_figure(_curves(), x="tokens", smoothing=0.6)
    assert fig.layout.xaxis.type == "log"
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.xaxis.title.text == "tokens (D)"
    # Two runs x two splits, each a raw trace plus a smoothed one.
    assert len(fig.data) == 8
    raw = [t for t in fig.data if t.name.endswith("(raw)")]
    assert len(raw) == 4
    assert all(t.line.color.startswith("rgba(") and t.line.color.endswith("0.25)") for t in raw)
    assert all(t.showlegend is False for t in raw)
    eval_lines = [t for t in fig.data if "eval" in t.name]
    assert all(t.line.dash == "dash" for t in eval_lines)
    assert "loss=" in fig.data[0].hovertemplate


def test_curves_figure_linear_axes_and_no_smoothing() -> None:
    fig = figures.curves_figure(_curves(), x="step", log_x=False, log_y=False, smoothing=0.0)
    assert fig.layout.xaxis.type == "linear"
    assert fig.layout.yaxis.type == "linear"
    assert len(fig.data) == 4
    assert not any(t.name.endswith("(raw)") for t in fig.data)


def test_curves_figure_drops_nonpositive_x_on_log_axis_and_handles_empty() -> None:
    frame = _curves()
    frame.loc[0, "step"] = 0
    fig = figures.curves_figure(frame, smoothing=0.0)
    assert all(np.all(np.asarray(t.x) > 0) for t in fig.data)
    empty = figures.curves_figure(frame.iloc[0:0])
    assert len(empty.data) == 0


def test_run_names_reach_plotly_as_text_in_both_panels() -> None:
    from app.dashboard import runfigures

    frame = _curves()
    hostile = '<a href="https://evil.example">x</a>'
    frame["run"] = frame["run"].replace("small", hostile)
    lr = pd.DataFrame({"run": [hostile, hostile], "x": [1.0, 2.0], "lr": [1e-3, 5e-4]})
    fig = runfigures.curves_with_lr(frame, lr, x="step", smoothing=0.6)
    labels = [t.name for t in fig.data] + [t.hovertemplate for t in fig.data]
    assert not any("<a " in label for label in labels)
    assert sum("&lt;a href" in t.name for t in fig.data) == 2 + 2 + 1  # raw, smoothed, lr


def test_fit_figure_has_band_fit_and_reference_lines() -> None:
    x = np.array([1e6, 3e6, 1e7, 3e7])
    y = 2.0 + (1e5 / x) ** 0.3
    grid = np.geomspace(1e6, 1e9, 50)
    pred = 2.0 + (1e5 / grid) ** 0.3
    fig = figures.fit_figure(
        x,
        y,
        grid,
        pred,
        (pred * 0.98, pred * 1.02),
        held_out=x > 2e7,
        l_inf=2.0,
        entropy=1.95,
        x_max_seen=3e7,
        labels=list("abcd"),
    )
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    names = [t.name for t in fig.data]
    assert "95% band" in names and "fit" in names
    band = next(t for t in fig.data if t.name == "95% band")
    assert band.fill == "tonexty"
    assert "held out" in names and "data (fitted)" in names
    assert "fitted irreducible loss L∞" in names
    assert "true entropy of the source" in names


def test_fit_figure_without_band_or_entropy() -> None:
    grid = np.geomspace(1, 10, 5)
    fig = figures.fit_figure(np.array([1.0, 2.0]), np.array([3.0, 2.5]), grid, 3 / grid)
    names = [t.name for t in fig.data]
    assert "95% band" not in names
    assert "true entropy of the source" not in names


def test_residual_kl_history_schedule_and_bar_figures() -> None:
    res = figures.residuals_figure(np.array([1.0, 10.0]), np.array([0.01, -0.01]))
    assert res.layout.xaxis.type == "log"
    kl = figures.kl_figure(np.array([1e6, 1e7]), np.array([2.0, 2.0]), np.array([0.5, 0.3]))
    assert kl.layout.barmode == "stack" and len(kl.data) == 2
    hist = pd.DataFrame(
        {
            "created_at": pd.date_range("2026-01-01", periods=3, freq="min"),
            "L_inf": [2.1, 2.05, 2.02],
            "lo": [2.0, 2.0, 2.0],
            "hi": [2.2, 2.1, 2.04],
        }
    )
    hf = figures.history_figure(hist, "L_inf", lo="lo", hi="hi")
    assert hf.data[0].error_y.array is not None
    steps = np.arange(100)
    observed = pd.DataFrame({"run": ["a"] * 100, "step": steps, "loss": 3 - steps / 100})
    sf = figures.schedule_figure(steps, np.full(100, 1e-3), 3 - steps / 90, observed)
    assert [t.name for t in sf.data] == ["learning rate", "a", "predicted loss"]
    banded = figures.schedule_figure(
        steps, np.full(100, 1e-3), 3 - steps / 90, None, band=(2.9 - steps / 90, 3.1 - steps / 90)
    )
    assert "95% band" in [t.name for t in banded.data]
    bars = figures.bar_figure(["x", "y"], [0.3, 0.7], y_title="ratio")
    assert list(bars.data[0].y) == [0.3, 0.7]


def test_ema_fast_path_matches_the_recursion() -> None:
    y = np.random.default_rng(0).normal(3.0, 0.3, 500)
    w, acc, ref = 0.9, 0.0, []
    for n, v in enumerate(y, start=1):
        acc = w * acc + (1 - w) * v
        ref.append(acc / (1 - w**n))
    np.testing.assert_allclose(figures.ema_debiased(y, w), ref, rtol=1e-12)
