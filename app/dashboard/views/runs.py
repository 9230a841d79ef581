"""Runs: projects and runs with their facts, and the view their data call for: loss
curves (with the LR below when the runs log one), or for a table of final losses, the
loss against N, D or C coloured by the other size, with a saved fit's compute-optimal
frontier. Export.

The view lives in the URL, so a link reopens it: the widgets' own query-parameter
binding keeps the view kind, axes, search and status filter, `runs-project` names the
project and `runs-pick` the runs picked by hand (only while that list is short; a long
one is left out and the link keeps the filter instead).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app.dashboard import pageerrors, publish, runfigures, runsdata, store_access
from app.dashboard.safetext import md

X_CHOICES = {"step": "step", "tokens": "tokens (D)", "flops": "FLOPs (C)"}
FINAL_X = {"params": "N", "tokens": "D", "flops": "C"}
VIEWS = {"auto": "auto", "curves": "curves", "final": "final losses"}
REFRESH_S = 3.0
MAX_DEFAULT_RUNS = 20
# The hand-picked runs go into the URL only while short: a link must stay shareable.
MAX_URL_PICKS = 25
MAX_URL_PICK_CHARS = 1000
PROJECT_PARAM = "runs-project"
PICK_PARAM = "runs-pick"
URL = "query-params"


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


# --- the URL: what the widgets' binding does not keep -------------------------------


def _project_from_url() -> None:
    """Seed the project picker from `?runs-project=` once per session (when valid)."""
    if "runs-url-project-read" in st.session_state:
        return
    st.session_state["runs-url-project-read"] = True
    wanted = st.query_params.get(PROJECT_PARAM)
    if wanted in store_access.projects(store_access.store_root()) or wanted == "(all projects)":
        st.session_state["runs-project"] = wanted


def _set_param(name: str, value: str | list[str] | None) -> None:
    """Set (or with None remove) a query parameter, only when it changes."""
    now = st.query_params.get_all(name)
    if value is None:
        if now:
            del st.query_params[name]
    elif now != ([value] if isinstance(value, str) else list(value)):
        st.query_params[name] = value


def _picks_from_url(project: str, names: list[str]) -> None:
    """Seed the hand-picked runs from `?runs-pick=` once per session and project."""
    flag = f"runs-url-picks-read-{project}"
    if flag in st.session_state:
        return
    st.session_state[flag] = True
    wanted = st.query_params.get_all(PICK_PARAM)
    known = [name for name in wanted if name in set(names)]
    if known:
        st.session_state[f"runs-follow-{project}"] = False
        st.session_state[f"runs-chosen-{project}"] = known


def _picks_to_url(follow: bool, chosen: list[str]) -> None:
    if follow:
        _set_param(PICK_PARAM, None)
        return
    if len(chosen) <= MAX_URL_PICKS and sum(len(c) + 11 for c in chosen) <= MAX_URL_PICK_CHARS:
        _set_param(PICK_PARAM, chosen or None)
        return
    _set_param(PICK_PARAM, None)
    st.caption(
        f"The page's link keeps the search and status filter, not these {len(chosen)} "
        "hand-picked runs (too long for a URL)."
    )


# --- curves -------------------------------------------------------------------------


def _curve_controls() -> dict:
    c1, c2, c3, c4 = st.columns([2, 2, 1, 3])
    return {
        "x": c1.radio(
            "x axis",
            list(X_CHOICES),
            format_func=X_CHOICES.get,
            horizontal=True,
            key="runs-x",
            bind=URL,
        ),
        "splits": c2.multiselect(
            "Splits", ["train", "eval"], default=["train", "eval"], key="runs-splits"
        ),
        "log_x": c3.toggle("log x", value=True, key="runs-logx", bind=URL),
        "log_y": c3.toggle("log y", value=True, key="runs-logy", bind=URL),
        "smoothing": c4.slider("EMA smoothing", 0.0, 0.99, 0.6, 0.01, key="runs-smooth"),
    }


def _choose(project: str, names: list[str]) -> list[str]:
    _picks_from_url(project, names)
    follow_key, chosen_key = f"runs-follow-{project}", f"runs-chosen-{project}"
    st.session_state.setdefault(follow_key, True)
    follow = st.toggle(
        f"Plot all runs (the first {MAX_DEFAULT_RUNS}; new runs join as they start)",
        key=follow_key,
    )
    if follow:
        _picks_to_url(True, [])
        return names[:MAX_DEFAULT_RUNS]
    if chosen_key in st.session_state:
        st.session_state[chosen_key] = [n for n in st.session_state[chosen_key] if n in names]
    else:
        st.session_state[chosen_key] = names[: min(6, len(names))]
    chosen = st.multiselect("Runs to plot", names, key=chosen_key)
    _picks_to_url(False, chosen)
    return chosen


def _curves(root: str, project: str, shown: pd.DataFrame) -> list[str]:
    view = _curve_controls()
    chosen = _choose(project, list(shown["run"].astype(str)))
    if not chosen:
        st.info("Select runs to plot.")
        return chosen
    x = view["x"]
    # Keep the browser's work bounded: about 24k points in all, M4-downsampled in DuckDB.
    max_points = max(200, min(2000, 24_000 // max(1, 2 * len(chosen))))
    splits = tuple(view["splits"]) or None
    frame = store_access.cached_curve(root, project, tuple(chosen), x, splits, max_points)
    if x not in frame.columns and "x" in frame.columns:
        frame = frame.rename(columns={"x": x})
    if frame.empty:
        if x == "step":
            st.info("No points yet for these runs (with this split).")
        else:
            st.info(
                f"These runs log no {X_CHOICES[x]} with their losses: nothing to plot "
                "against it. Choose step as the x axis."
            )
        return chosen
    lr = store_access.lr_curves(root, project, tuple(chosen), x)
    fig = runfigures.curves_with_lr(
        frame,
        lr,
        x=x,
        log_x=view["log_x"],
        log_y=view["log_y"],
        smoothing=view["smoothing"],
    )
    publish.chart(fig, key=f"curves-{project}", name=f"{project}-loss-vs-{x}")
    below = "; the learning rate below, as logged" if len(lr) else ""
    st.caption(f"{len(frame):,} plotted points (downsampled in the database){below}")
    return chosen


# --- final losses -------------------------------------------------------------------


def _frontier_fits(root: str, project: str) -> pd.DataFrame:
    """Saved fits of this project whose law has a compute-optimal frontier, newest first."""
    from fitting.laws import laws_supporting

    fits = store_access.fits(root, project)
    if fits is None or len(fits) == 0:
        return pd.DataFrame(columns=["id", "law", "created_at"])
    return fits[fits["law"].isin(laws_supporting("compute_optimal"))]


@st.cache_data(ttl=store_access.STABLE_TTL_S, max_entries=32, show_spinner=False)
def _frontier(root: str, fit_id: int, c_lo: float, c_hi: float) -> runfigures.Frontier:
    from fitting.persist import load_result
    from store import Store

    result = load_result(Store(root), fit_id)
    budgets = np.geomspace(c_lo, c_hi, 60) if c_hi > c_lo else np.array([c_lo])
    return runfigures.frontier(result, budgets, f"compute-optimal frontier (fit {fit_id})")


def _frontier_line(root: str, fit_id: int, usable: pd.DataFrame) -> runfigures.Frontier | None:
    """The frontier over the plotted runs' FLOP budgets (else the fit's own), or None
    with a note saying why it cannot be drawn."""
    from fitting.errors import FitError
    from store.errors import BadInputError

    budgets = usable["flops"][usable["flops"] > 0].to_numpy(float)
    try:
        if budgets.size == 0:
            budgets = np.asarray(_fit_flops_range(root, fit_id), dtype=float)
        if budgets.size == 0:
            st.caption(f"No FLOP budgets to draw fit {fit_id}'s frontier over.")
            return None
        return _frontier(root, fit_id, float(budgets.min()), float(budgets.max()))
    except (FitError, BadInputError, ValueError, KeyError) as err:
        st.caption(f"The frontier of fit {fit_id} could not be drawn: {md(err)}")
        return None


@st.cache_data(ttl=store_access.STABLE_TTL_S, max_entries=32, show_spinner=False)
def _fit_flops_range(root: str, fit_id: int) -> list[float]:
    from fitting.persist import load_result
    from store import Store

    return list(load_result(Store(root), fit_id).data_range.get("flops") or [])


def _pick_fit(fits: pd.DataFrame, where: Any) -> int | None:
    if fits.empty:
        return None
    labels = {
        int(r.id): f"fit {int(r.id)} · {r.law} · {pd.Timestamp(r.created_at):%Y-%m-%d %H:%M}"
        for r in fits.itertuples()
    }
    options: list[int | None] = [*labels, None]
    return where.selectbox(
        "Frontier of a saved fit",
        options,
        format_func=lambda i: "none" if i is None else labels[i],
        key="runs-fit",
    )


def _final(root: str, project: str, shown: pd.DataFrame) -> None:
    points = store_access.final_points(root, project)
    points = points[points["run"].astype(str).isin(set(shown["run"].astype(str)))]
    if points.empty:
        st.info("No losses logged for these runs yet: nothing to plot.")
        return
    splits = runsdata.splits_by_preference(points)
    c1, c2, c3 = st.columns([2, 3, 3])
    x = c1.radio(
        "x axis: N params, D tokens, C FLOPs",
        list(FINAL_X),
        format_func=FINAL_X.get,
        horizontal=True,
        key="runs-fx",
        bind=URL,
    )
    split, labels = splits[0], runsdata.split_labels(splits)
    if len(splits) > 1:
        split = c2.selectbox("Split", splits, format_func=labels.get, key="runs-split", bind=URL)
    table = runsdata.final_table(points, shown, split)
    colour_by = runfigures.COLOUR_BY[x]
    usable = table[np.isfinite(table[x]) & (table[x] > 0) & np.isfinite(table["loss"])]
    if usable.empty:
        have = [FINAL_X[k] for k in FINAL_X if (table[k] > 0).any()]
        hint = f" They carry {', '.join(have)}: pick that axis." if have else ""
        st.info(
            f"None of these {len(table)} runs has {runfigures.SIZE_TITLES[x]} with its "
            f"final loss on split {md(labels[split])}: nothing to plot against it.{hint}"
        )
        return
    fit_id = _pick_fit(_frontier_fits(root, project), c3)
    line = None if fit_id is None else _frontier_line(root, fit_id, usable)
    fig = runfigures.final_loss_figure(usable, x=x, colour_by=colour_by, frontier_line=line)
    publish.chart(fig, key=f"final-{project}", name=f"{project}-final-loss-vs-{FINAL_X[x]}")
    _final_caption(table, usable, x, colour_by, labels[split], line)


def _final_caption(
    table: pd.DataFrame,
    usable: pd.DataFrame,
    x: str,
    colour_by: str,
    split: str,
    line: runfigures.Frontier | None,
) -> None:
    parts = [
        f"{len(usable):,} runs' final losses on split {md(split)}, against "
        f"{runfigures.SIZE_TITLES[x]}, coloured by {runfigures.SIZE_TITLES[colour_by]}"
    ]
    if len(usable) < len(table):
        parts.append(f"{len(table) - len(usable)} left out (no {FINAL_X[x]}, or no finite loss)")
    if bool(usable["computed"].any()):
        parts.append("C = 6ND (or D = C/6N) where the run logged no FLOPs (tokens)")
    if line is not None:
        band = f"band: {line.method}" if line.band is not None else line.method
        parts.append(f"the {line.label}: loss at N_opt(C), {band}")
    st.caption("; ".join(parts) + ".")


# --- the page -----------------------------------------------------------------------


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
    """The view (curves or final losses), its controls and its plot: their own
    fragment, so changing an axis redraws the plot alone, not the whole page."""
    shown = _filter(store_access.runs(root, project), search, statuses)
    choice = st.radio(
        "View", list(VIEWS), format_func=VIEWS.get, horizontal=True, key="runs-view", bind=URL
    )
    view = runsdata.view_for(choice, shown)
    if choice == "auto":
        single = int(runsdata.single_point_runs(shown).sum()) if len(shown) else 0
        st.caption(
            f"auto: {VIEWS[view]} ({single} of {len(shown)} runs are single points, "
            "a table of final losses)"
        )
    if view == "final":
        _set_param(PICK_PARAM, None)
        _final(root, project, shown)
        chosen = list(shown["run"].astype(str))
    else:
        chosen = _curves(root, project, shown)
    if chosen:
        with st.expander("Export (full resolution)"):
            _export(project, chosen)


def main() -> None:
    st.title("Runs")
    root = store_access.store_root()
    _project_from_url()
    project = store_access.project_picker(key="runs-project", allow_all=True)
    _set_param(PROJECT_PARAM, st.session_state.get("runs-project"))
    all_runs = store_access.runs(root, project)
    if all_runs is None or len(all_runs) == 0:
        st.info(
            "The store is empty. Upload CSV files on the Upload page, or run "
            "`scalinglab demo` to train a small model family live."
        )
        st.fragment(pageerrors.guarded(_wait_for_runs), run_every=REFRESH_S)(root, project)
        return
    search = st.sidebar.text_input("Search runs", key="runs-search", bind=URL)
    statuses = st.sidebar.multiselect(
        "Status", sorted(all_runs["status"].dropna().unique()), key="runs-status", bind=URL
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
