"""Plot queries: downsampled curves, runs list, export, data versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from store import Store, queries
from store.errors import BadInputError
from store.inbox import InboxWriter
from store.ingest import ingest_inbox


def _big_run(store: Store, n: int = 50_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    steps = np.arange(n)
    loss = 2.0 + 5.0 / np.sqrt(1.0 + steps) + rng.normal(0, 0.01, n)
    loss[min(12_345, n - 1)] = 9.0  # a spike the downsampling must keep
    frame = pd.DataFrame(
        {"step": steps, "loss": loss, "tokens": steps * 512.0, "flops": steps * 1e9}
    )
    with InboxWriter(store, "p", "big") as w:
        w.log_many(frame)
        w.log_many({"step": steps[::100], "split": "eval", "loss": loss[::100] + 0.1})
    return frame


@pytest.mark.parametrize(
    ("x", "spacing"), [("step", "log"), ("step", "linear"), ("tokens", "log"), ("flops", "linear")]
)
def test_curve_keeps_shape_within_budget(store: Store, x: str, spacing: str) -> None:
    frame = _big_run(store)
    ingest_inbox(store)
    got = queries.curve(store, "p", ["big"], x=x, max_points=400, spacing=spacing)
    train = got[got["split"] == "train"]
    assert 0 < len(train) <= 400
    n_eval = len(got[got["split"] == "eval"])  # 500 points: bucketed too (no tokens: none)
    assert 100 < n_eval <= 400 if x == "step" else n_eval == 0
    assert train[x].is_monotonic_increasing
    # Ends, extremes and the spike survive.
    assert train["step"].iloc[0] == 0 and train["step"].iloc[-1] == len(frame) - 1
    assert train["loss"].max() == 9.0 and train["loss"].min() == frame["loss"].min()
    # Every returned point is a real point of the curve.
    merged = train.merge(frame, on="step", suffixes=("", "_orig"))
    assert len(merged) == len(train) and (merged["loss"] == merged["loss_orig"]).all()
    if x != "step":
        assert (merged[x] == merged[f"{x}_orig"]).all()
    if spacing == "log":  # the first decades keep every point
        assert list(train["step"].iloc[:10]) == list(range(10))


def test_curve_short_series_whole_and_lr_only_rows_skipped(store: Store) -> None:
    with InboxWriter(store, "p", "r") as w:
        for step in range(10):
            w.log(step, lr=1e-3, loss=(3.0 - 0.1 * step) if step % 3 == 0 else None)
    got = queries.curve(store, "p", ["r"], max_points=2000)  # from the inbox
    assert list(got["step"]) == [0, 3, 6, 9]
    ingest_inbox(store)
    assert list(queries.curve(store, "p", ["r"])["step"]) == [0, 3, 6, 9]
    assert queries.curve(store, "p", ["r"], splits=["eval"]).empty
    with pytest.raises(BadInputError, match="x must be"):
        queries.curve(store, "p", ["r"], x="time")


def test_export_round_trip(store: Store, tmp_path: Path) -> None:
    _big_run(store, n=1000)
    ingest_inbox(store)
    expected = queries.points_frame(store, "p")
    for name in ("out.csv", "out.parquet"):
        n = queries.export(store, tmp_path / name, project="p")
        assert n == len(expected) == 1010
        back = (
            pd.read_csv(tmp_path / name)
            if name.endswith(".csv")
            else pd.read_parquet(tmp_path / name)
        )
        assert list(back["step"]) == list(expected["step"])
        assert np.allclose(back["loss"], expected["loss"])
    with pytest.raises(BadInputError, match=r"\.csv or \.parquet"):
        queries.export(store, tmp_path / "out.xlsx")


def test_data_version_changes_with_data(store: Store) -> None:
    v0 = queries.data_version(store, "p")
    w = InboxWriter(store, "p", "r")
    w.log(0, loss=1.0)
    w.flush()
    v1 = queries.data_version(store, "p")
    ingest_inbox(store)
    v2 = queries.data_version(store, "p")
    assert len({v0, v1, v2}) == 3
    assert queries.data_version(store, "p") == v2  # stable without changes
    assert queries.list_projects(store) == ["p"]
    # Another project's live run leaves this project's version alone.
    with InboxWriter(store, "other", "r") as other:
        other.log(0, loss=1.0)
    assert queries.data_version(store, "p") == v2
    assert queries.data_version(store, "other") != queries.data_version(store, "p")


def test_curve_from_inbox_equals_curve_after_ingest(store: Store) -> None:
    _big_run(store, n=20_000)
    pending_only = queries.curve(store, "p", ["big"], max_points=500)
    ingest_inbox(store)
    pd.testing.assert_frame_equal(pending_only, queries.curve(store, "p", ["big"], max_points=500))
    with InboxWriter(store, "p", "big") as w:  # stored tiles plus a pending piece
        # Distinct losses: with ties, which tied point a bucket keeps is arbitrary.
        w.log_many({"step": np.arange(20_000, 30_000), "loss": 2.5 + np.arange(10_000) / 1e6})
    mixed = queries.curve(store, "p", ["big"], max_points=500)
    ingest_inbox(store)
    pd.testing.assert_frame_equal(mixed, queries.curve(store, "p", ["big"], max_points=500))
    assert mixed["step"].max() == 29_999 and len(mixed[mixed["split"] == "train"]) <= 500
