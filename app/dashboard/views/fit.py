"""Fit: pick runs and a law, fit with uncertainty, inspect the fit, and save it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app.dashboard import figures, fitview, store_access
from app.dashboard.safetext import md
from store.errors import ScalinglabError

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
    name = st.selectbox("Law", names, index=names.index(DEFAULT_LAW), key="fit-law")
    law = LAWS[name]
    st.code(law.formula, language=None)
    st.caption(law.description)
    return name, law


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
    chosen = st.multiselect("Runs (empty = all runs of the project)", names, key="fit-runs")
    curve_law = law.kind == "curves"
    c1, c2 = st.columns(2)
    auto = "auto (eval, else train)"
    choices = [auto, *splits]
    # Curve laws fit the dense train curve; point laws prefer held-out (eval) losses.
    default = choices.index("train") if curve_law and "train" in choices else 0
    split = c1.selectbox(
        "Split",
        choices,
        index=default,
        key=f"fit-split-{curve_law}",
        help="Several eval sets: choose one (the fit refuses to pick one silently).",
    )
    reduce = c2.radio(
        "Points",
        ["final", "best", "all"],
        index=2 if curve_law else 0,
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
    excluded = st.multiselect(
        "Leave out runs (or click points / table rows below)",
        names,
        default=[r for r in st.session_state.get("fit-excluded", []) if r in names],
        key="fit-exclude",
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
        options["x"] = c1.radio(
            "x axis",
            list(law.x_columns),
            format_func=lambda col: X_OPTIONS.get(col, col),
            horizontal=True,
            key="fit-x",
        )
    options["intervals"] = c2.selectbox(
        "Intervals",
        list(INTERVALS),
        key="fit-intervals",
        format_func=INTERVALS.get,
        help="auto covers at its nominal level on known-truth data (BENCHMARKS.md)",
    )
    resamples = int(
        c2.number_input(
            "Bootstrap resamples",
            0,
            5000,
            400,
            50,
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
    options["loss"] = c3.selectbox(
        "Objective",
        ["huber", "ls"],
        key="fit-obj",
        format_func={"huber": "Huber", "ls": "least squares"}.get,
    )
    if options["loss"] == "huber":
        options["delta"] = float(
            c3.number_input("Huber delta", 1e-5, 1.0, 1e-3, 1e-4, format="%.0e", key="fit-delta")
        )
    options["residuals"] = c1.radio(
        "Residuals", ["log", "linear"], horizontal=True, key="fit-residuals"
    )
    return options


def run_fit(
    project: str, law_name: str, selection: dict[str, Any], options: dict[str, Any]
) -> None:
    from fitting.jobs import fit_selection

    with st.status(f"Fitting {law_name}…", expanded=False) as status:
        try:
            status.write("loading the selection from the store")
            frame = store_access.selection_frame(store_access.store_root(), project, selection)
            status.write(f"fitting {len(frame)} points, {options.get('bootstrap', 0)} resamples")
            result, frame = fit_selection(
                store_access.get_store(), project, law_name, selection, options, data=frame
            )
            status.update(label=f"Fitted {law_name} on {len(frame)} points", state="complete")
        except ScalinglabError as err:
            status.update(label="Fit failed", state="error")
            st.error(md(err))
            return
    st.session_state["fit"] = {
        "result": result,
        "data": frame,
        "project": project,
        "selection": {**selection, **(result.selection or {})},
        "law": law_name,
        "options": options,
    }


def extrapolation(fit: dict[str, Any]) -> None:
    """The extrapolation test, on demand: it refits without the largest-scale points."""
    test = fit.get("extrapolation") or (fit["result"].checks or {}).get("extrapolation")
    if not test:
        st.caption("Refit without the points at the largest scale and score the prediction.")
        if not st.button("Run the extrapolation test", key="fit-ext-go"):
            return
        try:
            test = fitview.extrapolation_report(fit["result"], fit["data"])
        except ScalinglabError as err:
            st.error(md(err))
            return
        fit["extrapolation"] = test
        st.rerun()  # redraw the fit plot with the held-out points marked
    c1, c2, c3 = st.columns(3)
    c1.metric("held-out points", f"{test['n_heldout']} (of {test['n_heldout'] + test['n_train']})")
    c2.metric("mean relative error", f"{test['mean_rel_error']:.3%}")
    c3.metric("worst relative error", f"{test['max_rel_error']:.3%}")
    st.caption(
        f"Fitted on points below {test['scale_threshold']:.3g}; refit parameters: "
        + ", ".join(f"{k} = {v:.4g}" for k, v in test["params"].items())
    )


def _exclude_and_refit(fit: dict[str, Any], runs: list[str]) -> None:
    """Leave ``runs`` out (a click on a point or a table row) and fit again."""
    excluded = list(dict.fromkeys([*st.session_state.get("fit-excluded", []), *runs]))
    st.session_state["fit-excluded"] = excluded
    st.session_state.pop("fit-exclude", None)  # the multiselect shows the new list
    selection = {k: v for k, v in fit["selection"].items() if k != "report"}
    selection["exclude"] = excluded
    run_fit(fit["project"], fit["law"], selection, fit["options"])
    st.rerun()


def _clicked_runs(event: Any, frame: pd.DataFrame, x: str) -> list[str]:
    """The runs of the points selected on the fit plot (matched by their x and loss)."""
    points = (getattr(event, "selection", None) or {}).get("points") or []
    if not points or "run" not in frame.columns:
        return []
    xs = pd.to_numeric(frame[x], errors="coerce").to_numpy(float)
    ys = pd.to_numeric(frame["loss"], errors="coerce").to_numpy(float)
    out = []
    for point in points:
        px, py = point.get("x"), point.get("y")
        if px is None or py is None:
            continue
        close = np.isclose(xs, float(px), rtol=1e-9) & np.isclose(ys, float(py), rtol=1e-9)
        out += frame.loc[close, "run"].astype(str).tolist()
    return list(dict.fromkeys(out))


def selection_summary(fit: dict[str, Any]) -> None:
    """The rows the fit used and dropped and why, as every output states them."""
    from fitting.selection import SelectionReport

    report = (fit["selection"] or {}).get("report")
    if not report:
        return
    lines = SelectionReport(**report).lines()
    st.caption(md(lines[0] + "".join(f" · {line.strip()}" for line in lines[1:])))


def points_table(fit: dict[str, Any]) -> None:
    """The fit's points; selecting rows and pressing the button leaves those runs out."""
    frame = fit["data"]
    if "run" not in frame.columns:
        return
    cols = [c for c in ("run", "split", "params", "tokens", "flops", "loss") if c in frame]
    shown = frame.dropna(subset=["loss"])[cols].reset_index(drop=True)
    event = st.dataframe(
        shown,
        hide_index=True,
        key="fit-points",
        on_select="rerun",
        selection_mode="multi-row",
        width="stretch",
    )
    rows = list(getattr(event, "selection", {}).get("rows", []))
    if rows and st.button(f"Leave out {len(rows)} selected run(s) and refit", key="fit-drop"):
        _exclude_and_refit(fit, shown.loc[rows, "run"].astype(str).tolist())


def show_result(fit: dict[str, Any]) -> None:
    result, frame = fit["result"], fit["data"]
    selection_summary(fit)
    if result.options.get("group_by"):
        from fitting.constraints import group_table

        _, rows = group_table(result)
        st.subheader(f"One fit per {md(result.options['group_by'])}")
        shared = ", ".join(result.options.get("share") or []) or "none"
        st.caption(f"shared parameters: {md(shared)}")
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="fit-groups")
    st.subheader("Parameters")
    table = fitview.params_table(result)
    st.markdown(
        " · ".join(
            f"**{r.parameter}** = {r.value:.5g} ± {r.stderr:.2g}"
            + (f" ({r.flags})" if r.flags else "")
            for r in table.itertuples()
        )
    )
    st.caption(fitview.method_caption(result))
    st.dataframe(table, hide_index=True, width="stretch")
    for doubt in result.doubts():
        st.warning(md(doubt))
    st.caption(
        f"{result.n_points} points · objective {result.objective:.4g} · "
        f"AIC {result.aic:.2f} · {getattr(result, 'duration_s', 0.0):.2f} s"
    )
    if fitview.is_curve_fit(result):
        st.plotly_chart(fitview.curve_fit_figure(result, frame), key="fit-curves")
    elif not result.options.get("group_by"):  # a grouped fit: its table above
        held = fitview.held_out_mask(result, frame, fit.get("extrapolation"))
        event = st.plotly_chart(
            fitview.point_fit_figure(result, frame, held_out=held),
            key="fit-plot",
            on_select="rerun",
            selection_mode="points",
        )
        clicked = _clicked_runs(event, frame, fitview.main_x(result, frame))
        if clicked and st.button(f"Leave out {', '.join(clicked)} and refit", key="fit-drop-point"):
            _exclude_and_refit(fit, clicked)
    points_table(fit)
    l_inf, entropy = fitview.irreducible(result), fitview.true_entropy(frame)
    if l_inf is not None and entropy is not None:
        st.metric(
            "Fitted irreducible loss vs true entropy",
            f"{l_inf:.4f}",
            delta=f"{l_inf - entropy:+.4f} nats vs {entropy:.4f}",
            delta_color="off",
        )
    tab_res, tab_kl, tab_ext = st.tabs(["Residuals", "KL decomposition", "Extrapolation test"])
    tab_res.plotly_chart(fitview.residuals_figure(result, frame), key="fit-res")
    kl = fitview.kl_frame(result, frame)
    x = fitview.main_x(result, frame)
    if kl is not None:
        tab_kl.plotly_chart(
            figures.kl_figure(
                kl[x].to_numpy(), kl["irreducible"].to_numpy(), kl["reducible"].to_numpy(), x_name=x
            ),
            key="fit-kl",
        )
    with tab_ext:
        extrapolation(fit)
    if st.button("Save fit", key="fit-save"):
        from fitting.persist import save_result

        fit_id = save_result(store_access.get_store(), result, fit["project"], fit["selection"])
        store_access.invalidate()
        st.success(f"Saved as fit {fit_id}: use it on the Predict page.")


def main() -> None:
    st.title("Fit")
    project = store_access.project_picker(key="fit-project")
    if project is None:
        st.info("No data yet: upload CSV files or run `scalinglab demo`.")
        return
    law_name, law = law_picker()
    selection = selection_controls(project, law)
    options = {**option_controls(law), **group_controls(project, law)}
    if st.button("Fit", type="primary", key="fit-go"):
        run_fit(project, law_name, selection, options)
    fit = st.session_state.get("fit")
    if fit is not None and fit["project"] == project:
        show_result(fit)


main()
