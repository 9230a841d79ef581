"""The Runs page's data and figures on real stores: final points per (run, split), C = 6ND
where none was logged, the LR downsampled without losing its shape, the view the data
call for, and the page's messages where a view has nothing to show (AppTest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.dashboard import runfigures, runsdata
from app.dashboard.safetext import md
from tests.published import CHINCHILLA, GADRE_C4, LUO_25M

ENTRY = str(Path(__file__).resolve().parents[2] / "app" / "dashboard" / "streamlit_app.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> object:
    from store import Store
    from store.importers import import_files

    built = Store(tmp_path_factory.mktemp("runs-views") / "store")
    import_files(built, [CHINCHILLA], project="chinchilla")
    import_files(built, [GADRE_C4], project="gadre")
    import_files(built, [LUO_25M / "cosine_24000.csv", LUO_25M / "wsdcon_9.csv"], project="luo")
    return built


def test_gadre_final_points_per_validation_set_with_c_from_6nd(store: object) -> None:
    from store import queries

    points = runsdata.final_points(store, "gadre")
    assert len(points) == 34 * 8 and (points["points"] == 1).all()
    splits = runsdata.splits_by_preference(points)
    assert len(splits) == 8 and "c4_val" in splits[0]
    labels = runsdata.split_labels(splits)
    assert labels[splits[0]] == "c4_val/shard-{0000000..0000010}.tar"  # no shared folders
    assert len(set(labels.values())) == 8 and all(len(v) <= 48 for v in labels.values())
    assert runsdata.split_labels(["train", "eval"]) == {"train": "train", "eval": "eval"}
    runs = queries.list_runs(store, "gadre")
    assert runsdata.single_point_runs(runs).all()
    table = runsdata.final_table(points, runs, splits[0])
    assert len(table) == 34 and table["computed"].all()  # Gadre et al. give N and D only
    np.testing.assert_allclose(table["flops"], 6.0 * table["params"] * table["tokens"])
    # Their 411M model at 0.25x Chinchilla's tokens, on C4's validation set.
    row = table[table["run"] == "c4_original-d=1024_l=24_h=8-0.25"].iloc[0]
    assert row["params"] == 411616256 and row["loss"] == pytest.approx(3.5279492850157737)


def test_auto_view_final_for_a_table_curves_for_curves(store: object, tmp_path: Path) -> None:
    from store import queries
    from tests.app.builders import build_store

    chinchilla = queries.list_runs(store, "chinchilla")
    assert runsdata.view_for("auto", chinchilla) == "final"
    assert runsdata.view_for("auto", queries.list_runs(store, "luo")) == "curves"
    curves = queries.list_runs(build_store(tmp_path / "built"), "demo")  # 40 steps each
    assert runsdata.view_for("auto", curves) == "curves"
    mixed = queries.list_runs(store).query("project != 'gadre'")  # 245 single, 2 curves
    assert runsdata.view_for("auto", mixed) == "final"
    assert runsdata.view_for("curves", chinchilla) == "curves"
    assert runsdata.view_for("auto", chinchilla.iloc[0:0]) == "curves"


def test_lr_keeps_the_schedule_shape_in_few_points(tmp_path: Path) -> None:
    from store import Store
    from store.inbox import InboxWriter
    from store.ingest import ingest_inbox

    store = Store(tmp_path / "store")
    steps = np.arange(1, 50_001)
    warm = 1_000
    lr = np.where(
        steps < warm,
        3e-4 * steps / warm,
        3e-5 + 0.5 * (3e-4 - 3e-5) * (1 + np.cos(np.pi * (steps - warm) / (50_000 - warm))),
    )
    with InboxWriter(store, "p", "long", flush_rows=60_000, flush_seconds=1e9) as writer:
        writer.log_many({"step": steps, "loss": 3.0 + 1.0 / np.sqrt(steps), "lr": lr})
    ingest_inbox(store)
    got = runsdata.lr_curves(store, "p", ["long"], "step")
    assert len(got) <= 4 * runsdata.LR_BUCKETS
    assert got["x"].iloc[0] == 1 and got["x"].iloc[-1] == 50_000
    assert got["lr"].max() == pytest.approx(3e-4, rel=1e-3)  # the peak at the warm-up's end
    # Read back at every step by linear interpolation, the schedule is off by < 1% of peak.
    back = np.interp(steps, got["x"].to_numpy(float), got["lr"].to_numpy(float))
    assert np.max(np.abs(back - lr)) < 0.01 * 3e-4
    assert runsdata.lr_curves(store, "p", ["absent"], "step").empty


def test_curves_figure_has_an_lr_panel_only_with_an_lr(store: object) -> None:
    from store import queries

    frame = queries.curve(store, "luo", ["cosine_24000", "wsdcon_9"], max_points=500)
    lr = runsdata.lr_curves(store, "luo", ["cosine_24000", "wsdcon_9"], "step")
    fig = runfigures.curves_with_lr(frame, lr, x="step")
    assert fig.layout.yaxis2.title.text == "learning rate" and fig.layout.xaxis.matches == "x2"
    lr_traces = [t for t in fig.data if t.yaxis == "y2"]
    loss_colour = {t.name.split(" · ")[0]: t.line.color for t in fig.data if t.yaxis == "y"}
    assert {t.name.split(" · ")[0]: t.line.color for t in lr_traces} == {
        run: loss_colour[run] for run in ("cosine_24000", "wsdcon_9")
    }  # each run's LR in its loss curve's colour
    alone = runfigures.curves_with_lr(frame, lr.iloc[0:0], x="step")
    assert "yaxis2" not in alone.layout.to_plotly_json()


def test_final_figure_colours_by_the_other_size_and_fits_its_axes(store: object) -> None:
    from store import queries

    table = runsdata.final_table(
        runsdata.final_points(store, "chinchilla"), queries.list_runs(store, "chinchilla"), "train"
    )
    table.loc[0, "flops"] = np.nan  # a run without C: drawn, but not on the colour scale
    fig = runfigures.final_loss_figure(table, x="params")
    coloured, grey = fig.data
    assert len(coloured.x) == 244 and len(grey.x) == 1
    assert coloured.marker.colorbar.title.text == "training FLOPs (C)"
    np.testing.assert_allclose(coloured.marker.color, np.log10(table["flops"].iloc[1:]))
    lo, hi = fig.layout.yaxis.range
    assert 1.5 < 10**lo < table["loss"].min() and table["loss"].max() < 10**hi < 6.0
    by_d = runfigures.final_loss_figure(table, x="tokens")
    assert by_d.data[0].marker.colorbar.title.text == "parameters (N)"
    assert by_d.layout.xaxis.title.text == "training tokens (D)"


def _page(store: object, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    monkeypatch.setenv("SCALINGLAB_STORE", str(store.root))  # type: ignore[attr-defined]
    monkeypatch.delenv("SCALINGLAB_SCHEDULER", raising=False)
    at = AppTest.from_file(ENTRY, default_timeout=60)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("info", "caption") for e in at.get(kind))


def test_page_picks_the_view_from_the_data(store: object, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _page(store, monkeypatch, **{"runs-project": "chinchilla"})
    assert "auto: final losses (245 of 245 runs" in _texts(at)
    assert len(at.get("plotly_chart")) == 1
    at = _page(store, monkeypatch, **{"runs-project": "luo"})
    assert "auto: curves (0 of 2 runs" in _texts(at)
    assert "the learning rate below" in _texts(at)
    at = _page(store, monkeypatch, **{"runs-project": "gadre", "runs-fx": "D"})
    shown = _texts(at)
    label = md("c4_val/shard-{0000000..0000010}.tar")  # the caption's Markdown, escaped
    assert f"34 runs' final losses on split {label}" in shown
    assert "against training tokens (D), coloured by parameters (N)" in shown
    assert "C = 6ND" in shown


def test_page_says_why_a_view_is_empty(store: object, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _page(store, monkeypatch, **{"runs-project": "luo", "runs-view": "final losses"})
    assert "None of these 2 runs has parameters (N)" in _texts(at)
    assert not at.get("plotly_chart")  # a message, never an empty chart
    at = _page(store, monkeypatch, **{"runs-project": "luo", "runs-x": "tokens (D)"})
    assert "These runs log no tokens (D)" in _texts(at)
    assert not at.get("plotly_chart")
