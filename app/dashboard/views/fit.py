"""Fit: pick runs and a law, fit with uncertainty, inspect the fit, and save it.

The fit runs in a background thread of the session (`fitrunner`): the page polls it in a
fragment (progress, a Cancel button), shows the point estimate with quick intervals first
and the full intervals when they arrive. What the page draws depends on the law's kind
(`fitview.view_kind`); its settings live in the URL (`fiturl`).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.dashboard import fitpanel, fitresults, fiturl, store_access
from store.errors import ScalinglabError

DEFAULT_RESAMPLES = 400

X_OPTIONS = {"params": "parameters N", "tokens": "tokens D", "flops": "FLOPs C", "step": "step"}
INTERVALS = {
    "auto": "auto (bootstrap, or sandwich for curves)",
    "bootstrap": "bootstrap",
    "sandwich": "robust sandwich",
    "profile": "profile likelihood",
    "curvature": "curvature (undercovers)",
}


def law_picker() -> tuple[str, Any]:
    from fitting.laws import DEFAULT_LAW, LAWS

    names = sorted(LAWS)
    _choice("fit-law", names, DEFAULT_LAW)
    name = st.selectbox("Law", names, key="fit-law")
    law = LAWS[name]
    st.code(law.formula, language=None)
    st.caption(law.description)
    return name, law


def _init(key: str, value: Any) -> None:
    """A widget's starting value, set once in session state (from the URL, else this):
    widgets then take no default of their own, so the two never disagree."""
    st.session_state.setdefault(key, value)


def _choice(key: str, choices: list[Any], default: Any) -> None:
    """Like `_init` for a pick among ``choices``: a value not among them (a link to a
    project or split that is gone) falls back to ``default``."""
    if st.session_state.get(key) not in choices:
        st.session_state[key] = default if default in choices else choices[0]


def _subset(key: str, choices: list[str], default: list[str] | None = None) -> None:
    """Like `_choice` for a multi-pick: values not among ``choices`` are dropped."""
    current = st.session_state.get(key, default or [])
    st.session_state[key] = [v for v in current if v in choices]


@st.cache_data(ttl=30, show_spinner=False)
def _splits_and_facts(root: str, project: str, data_version: str) -> tuple[list[str], list[str]]:
    """The project's splits and the run facts a fit can filter or group by."""
    from store import Store
    from store.runfacts import facts_frame

    store = Store(root)
    with store.connect(read_only=True) as con:
        splits = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT split FROM series WHERE project = ? ORDER BY split", [project]
            ).fetchall()
        ]
    facts = [c for c in facts_frame(store, project).columns if c != "run"]
    return splits, ["family", *facts]


def selection_controls(project: str, law: Any) -> dict[str, Any]:
    """The fit's selection in the vocabulary of `scalinglab fit` (fitting.selection)."""
    runs = store_access.runs(store_access.store_root(), project)
    names = list(runs["run"].astype(str))
    root = store_access.store_root()
    splits, _ = _splits_and_facts(root, project, store_access.version(root, project))
    _subset("fit-runs", names)
    chosen = st.multiselect("Runs (empty = all runs of the project)", names, key="fit-runs")
    curve_law = law.kind == "curves"
    c1, c2 = st.columns(2)
    auto = "auto (eval, else train)"
    choices = [auto, *splits]
    # Curve laws fit the dense train curve; point laws prefer held-out (eval) losses.
    _choice(f"fit-split-{curve_law}", choices, "train" if curve_law else auto)
    split = c1.selectbox(
        "Split",
        choices,
        key=f"fit-split-{curve_law}",
        help="Several eval sets: choose one (the fit refuses to pick one silently).",
    )
    _choice(f"fit-reduce-{curve_law}", ["final", "best", "all"], "all" if curve_law else "final")
    reduce = c2.radio(
        "Points",
        ["final", "best", "all"],
        horizontal=True,
        key=f"fit-reduce-{curve_law}",
        help="final: each run's last loss; best: the lowest final loss among runs of the "
        "same N and D (an LR sweep); all: every step",
    )
    where = st.text_input(
        "Filter (--where)",
        key="fit-where",
        placeholder="e.g. loss < 4.5 and tokens >= 5*params and train_dataset == 'c4'",
    )
    if "fit-exclude" not in st.session_state:  # after a click on a point: the new list
        st.session_state["fit-exclude"] = list(st.session_state.get("fit-excluded", []))
    _subset("fit-exclude", names)
    excluded = st.multiselect(
        "Leave out runs (or click points / table rows below)", names, key="fit-exclude"
    )
    st.session_state["fit-excluded"] = list(excluded)
    checkpoints = (
        False
        if curve_law
        else st.checkbox("Checkpoints as (N, D so far) points", key="fit-checkpoints")
    )
    selection: dict[str, Any] = {
        "runs": chosen or None,
        "splits": None,
        "reduce": "all" if checkpoints else reduce,
        "finished": not st.checkbox("Include running runs", key="fit-running"),
    }
    if not split.startswith("auto"):
        selection["split"] = split
    if where.strip():
        selection["where"] = [where.strip()]
    if excluded:
        selection["exclude"] = list(excluded)
    if checkpoints:
        selection["checkpoints"] = True
    return selection


def group_controls(project: str, law: Any) -> dict[str, Any]:
    """One law per group (a run fact), parameters shared across groups, tied parameters."""
    root = store_access.store_root()
    _, facts = _splits_and_facts(root, project, store_access.version(root, project))
    options: dict[str, Any] = {}
    c1, c2, c3 = st.columns(3)
    _choice("fit-group", ["(none)", *facts], "(none)")
    group_by = c1.selectbox("One fit per", ["(none)", *facts], key="fit-group")
    try:
        names = [p.name for p in law.parameters(None)]
    except (
        ScalinglabError,
        TypeError,
        ValueError,
        KeyError,
    ):  # parameters from the data (one set per family): no choice here
        names = []
    if group_by != "(none)":
        options["group_by"] = group_by
        _subset("fit-share", names)
        options["share"] = c2.multiselect("Shared by the groups", names, key="fit-share")
    tie = c3.text_input("Tie (e.g. alpha=beta)", key="fit-tie")
    if tie.strip():
        options["tie"] = [t.strip() for t in tie.split(",") if t.strip()]
    return options


def option_controls(law: Any) -> dict[str, Any]:
    """Engine options (names as `fitting.fit` takes them) plus the law's x choice."""
    options: dict[str, Any] = {}
    c1, c2, c3 = st.columns(3)
    if law.x_columns:
        _choice("fit-x", list(law.x_columns), law.x_columns[0])
        options["x"] = c1.radio(
            "x axis",
            list(law.x_columns),
            format_func=lambda col: X_OPTIONS.get(col, col),
            horizontal=True,
            key="fit-x",
        )
    _choice("fit-intervals", list(INTERVALS), "auto")
    options["intervals"] = c2.selectbox(
        "Intervals",
        list(INTERVALS),
        key="fit-intervals",
        format_func=INTERVALS.get,
        help="auto covers at its nominal level on known-truth data (BENCHMARKS.md)",
    )
    _init("fit-boot", DEFAULT_RESAMPLES)
    st.session_state["fit-boot"] = int(min(max(int(st.session_state["fit-boot"]), 0), 5000))
    resamples = int(
        c2.number_input(
            "Bootstrap resamples",
            min_value=0,
            max_value=5000,
            step=50,
            key="fit-boot",
            help="For the bootstrap (auto uses it for laws of final losses; 0: the robust "
            "sandwich instead). Curve laws under auto use the sandwich: a bootstrap of "
            "loss curves takes minutes.",
        )
    )
    if options["intervals"] == "bootstrap" or (
        options["intervals"] == "auto" and law.kind == "points"
    ):
        options["bootstrap"] = resamples
    _choice("fit-obj", ["huber", "ls"], "huber")
    options["loss"] = c3.selectbox(
        "Objective",
        ["huber", "ls"],
        key="fit-obj",
        format_func={"huber": "Huber", "ls": "least squares"}.get,
    )
    if options["loss"] == "huber":
        _init("fit-delta", 1e-3)
        st.session_state["fit-delta"] = float(min(max(st.session_state["fit-delta"], 1e-5), 1.0))
        options["delta"] = float(
            c3.number_input(
                "Huber delta",
                min_value=1e-5,
                max_value=1.0,
                step=1e-4,
                format="%.0e",
                key="fit-delta",
            )
        )
    _choice("fit-residuals", ["log", "linear"], "log")
    options["residuals"] = c1.radio(
        "Residuals", ["log", "linear"], horizontal=True, key="fit-residuals"
    )
    return options


def main() -> None:
    st.title("Fit")
    fit_now = fiturl.read_once()
    projects = store_access.projects(store_access.store_root())
    if st.session_state.get("fit-project") not in projects:
        st.session_state.pop("fit-project", None)  # a link to a project that is gone
    project = store_access.project_picker(key="fit-project")
    if project is None:
        st.info("No data yet: upload CSV files or run `scalinglab demo`.")
        return
    law_name, law = law_picker()
    selection = selection_controls(project, law)
    options = {**option_controls(law), **group_controls(project, law)}
    if st.button("Fit", type="primary", key="fit-go") or fit_now:
        # A fit still running is cancelled, never queued behind.
        fitpanel.start_fit(project, law_name, selection, options)
    snap = fitpanel.absorb()
    fitpanel.progress_panel(snap)
    fitpanel.message()
    fit = st.session_state.get("fit")
    shown = fit is not None and fit["project"] == project
    fiturl.write(law.kind == "curves", fitted=shown or bool(snap and snap.running))
    if shown:
        fitresults.show_result(fit)


main()
