"""Runs: projects and runs with their facts, curves of the selected runs, export."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.dashboard import figures, pageerrors, store_access
from app.dashboard.safetext import md

X_CHOICES = {"step": "step", "tokens": "tokens (D)", "flops": "FLOPs (C)"}
REFRESH_S = 3.0
MAX_DEFAULT_RUNS = 20


def _kind(value: Any, key: str) -> str:
    """A short label from a JSON fact (the schedule's kind, the source's name)."""
    fact = store_access.json_field(value)
    return str(fact.get(key) or fact.get("name") or fact.get("kind") or "") if fact else ""


def facts_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The run facts a researcher scans: N, D, C, schedule, source, status, last loss."""
    out = pd.DataFrame(
        {
            "project": runs.get("project"),
            "run": runs["run"],
            "N": runs.get("params"),
            "D (tokens)": runs.get("last_tokens"),
            "C (FLOPs)": runs.get("last_flops"),
            "schedule": [_kind(v, "kind") for v in runs.get("schedule", [None] * len(runs))],
            "source": [_kind(v, "name") for v in runs.get("source", [None] * len(runs))],
            "status": runs.get("status"),
            "points": runs.get("n_points"),
            "last step": runs.get("last_step"),
            "last loss": runs.get("last_loss"),
        }
    )
    return out


def projects_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per project: how many runs (and how many live), points, best last loss."""
    grouped = runs.groupby("project", sort=True)
    return pd.DataFrame(
        {
            "runs": grouped["run"].count(),
            "running": grouped["status"].agg(lambda s: int((s == "running").sum())),
            "points": grouped["n_points"].sum(),
            "largest N": grouped["params"].max(),
            "lowest last loss": grouped["last_loss"].min(),
        }
    ).reset_index()


def _filter(runs: pd.DataFrame, search: str, statuses: list[str]) -> pd.DataFrame:
    if search:
        runs = runs[runs["run"].astype(str).str.contains(search, case=False, regex=False)]
    if statuses:
        runs = runs[runs["status"].isin(statuses)]
    return runs


def _plot(
    root: str,
    project: str,
    chosen: tuple[str, ...],
    x: str,
    splits: tuple[str, ...],
    log_x: bool,
    log_y: bool,
    smoothing: float,
) -> None:
    # Keep the browser's work bounded: about 24k points in all, M4-downsampled in DuckDB.
    max_points = max(200, min(2000, 24_000 // max(1, 2 * len(chosen))))
    frame = store_access.cached_curve(root, project, chosen, x, splits or None, max_points)
    if x not in frame.columns and "x" in frame.columns:
        frame = frame.rename(columns={"x": x})
    if frame.empty:
        st.info("No points yet for these runs (with this x axis and split).")
        return
    fig = figures.curves_figure(frame, x=x, log_x=log_x, log_y=log_y, smoothing=smoothing)
    st.plotly_chart(fig, key=f"curves-{project}", width="stretch")
    st.caption(f"{len(frame):,} plotted points (downsampled in the database)")


def _export(project: str, chosen: list[str]) -> None:
    from store import queries

    fmt = st.radio("Format", ["csv", "parquet"], horizontal=True, key="export-format")
    if st.button("Prepare full-resolution export", key="export-go"):
        out = Path(tempfile.mkdtemp(prefix="scalinglab-export-")) / f"{project}.{fmt}"
        queries.export(store_access.get_store(), out, project=project, runs=chosen or None)
        st.session_state["export"] = (out.name, out.read_bytes())
    if "export" in st.session_state:
        name, payload = st.session_state["export"]
        mime = "text/csv" if name.endswith(".csv") else "application/octet-stream"
        st.download_button(f"Download {md(name)}", payload, file_name=name, mime=mime)


def _wait_for_runs(root: str, project: str | None) -> None:
    """Fragment body on an empty store: rerun the page as soon as a run appears (the demo
    sweep's first shard), so a newcomer never has to reload."""
    if len(store_access.runs(root, project)):
        st.rerun()


def _choose(project: str, names: list[str]) -> list[str]:
    follow = st.toggle(
        f"Plot all runs (the first {MAX_DEFAULT_RUNS}; new runs join as they start)",
        value=True,
        key=f"runs-follow-{project}",
    )
    if follow:
        return names[:MAX_DEFAULT_RUNS]
    return st.multiselect(
        "Runs to plot", names, default=names[: min(6, len(names))], key=f"runs-chosen-{project}"
    )


def _table(
    root: str, project: str | None, search: str, statuses: list[str], was_live: bool
) -> None:
    """The runs' facts; a fragment that refreshes itself while runs are live."""
    all_runs = store_access.runs(root, project)
    shown = _filter(all_runs, search, statuses)
    if project is None:
        st.dataframe(projects_table(shown), hide_index=True, width="stretch")
    st.dataframe(facts_table(shown), hide_index=True, width="stretch", height=260)
    if was_live and not all_runs["status"].eq("running").any():
        st.rerun()  # everything finished: rerun the page once, without the timers


def _panel(root: str, project: str, search: str, statuses: list[str]) -> None:
    """View controls, the run choice and the plot: their own fragment, so changing an
    axis or the smoothing redraws the plot alone, not the whole page."""
    view = _view_controls()
    shown = _filter(store_access.runs(root, project), search, statuses)
    chosen = _choose(project, list(shown["run"].astype(str)))
    if not chosen:
        st.info("Select runs to plot.")
        return
    _plot(
        root,
        project,
        tuple(chosen),
        view["x"],
        tuple(view["splits"]),
        view["log_x"],
        view["log_y"],
        view["smoothing"],
    )
    with st.expander("Export (full resolution)"):
        _export(project, chosen)


def _view_controls() -> dict:
    c1, c2, c3, c4 = st.columns([2, 2, 1, 3])
    return {
        "x": c1.radio(
            "x axis", list(X_CHOICES), format_func=X_CHOICES.get, horizontal=True, key="runs-x"
        ),
        "splits": c2.multiselect(
            "Splits", ["train", "eval"], default=["train", "eval"], key="runs-splits"
        ),
        "log_x": c3.toggle("log x", value=True, key="runs-logx"),
        "log_y": c3.toggle("log y", value=True, key="runs-logy"),
        "smoothing": c4.slider("EMA smoothing", 0.0, 0.99, 0.6, 0.01, key="runs-smooth"),
    }


def main() -> None:
    st.title("Runs")
    root = store_access.store_root()
    project = store_access.project_picker(key="runs-project", allow_all=True)
    all_runs = store_access.runs(root, project)
    if all_runs is None or len(all_runs) == 0:
        st.info(
            "The store is empty. Upload CSV files on the Upload page, or run "
            "`scalinglab demo` to train a small model family live."
        )
        st.fragment(pageerrors.guarded(_wait_for_runs), run_every=REFRESH_S)(root, project)
        return
    search = st.sidebar.text_input("Search runs", key="runs-search")
    statuses = st.sidebar.multiselect(
        "Status", sorted(all_runs["status"].dropna().unique()), key="runs-status"
    )
    live = bool(all_runs["status"].eq("running").any())
    # Live runs redraw themselves (new points, new runs); finished ones do not poll.
    every = REFRESH_S if live else None
    st.fragment(pageerrors.guarded(_table), run_every=every)(root, project, search, statuses, live)
    if project is None:
        st.info("Pick a project in the sidebar to plot its runs.")
        return
    st.fragment(pageerrors.guarded(_panel), run_every=every)(root, project, search, statuses)


main()
