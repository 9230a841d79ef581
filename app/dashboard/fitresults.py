"""The Fit page's result: the numbers with their flags beside them, then the view the
law's kind calls for (`fitview.view_kind`), residuals against each input, the points,
the KL split and the extrapolation test, and saving.

Kinds: ``isoflop`` (a law of N and D): IsoFLOP slices, the compute-optimal frontier with
its band (when the law has the hook) and predicted against observed; ``curves``: the
fitted curves with both bands, held-out points marked; ``size``: the loss against its
size input with both bands, and predicted against observed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app.dashboard import (
    access,
    figures,
    fitfigures,
    fitframes,
    fitpanel,
    fitview,
    publish,
    store_access,
)
from app.dashboard.safetext import md
from store.errors import ScalinglabError


def _memo(fit: dict[str, Any], name: str, make: Any) -> Any:
    """A view's frames, computed once per shown fit (reruns redraw, they do not redo)."""
    views = fit.setdefault("views", {})
    if name not in views:
        views[name] = make()
    return views[name]


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
        fit.pop("views", None)  # the held-out points are marked on every view
        st.rerun()
    c1, c2, c3 = st.columns(3)
    c1.metric("held-out points", f"{test['n_heldout']} (of {test['n_heldout'] + test['n_train']})")
    c2.metric("mean relative error", f"{test['mean_rel_error']:.3%}")
    c3.metric("worst relative error", f"{test['max_rel_error']:.3%}")
    st.caption(
        f"Fitted on points below {test['scale_threshold']:.3g}; refit parameters: "
        + ", ".join(f"{k} = {v:.4g}" for k, v in test["params"].items())
    )


def exclude_and_refit(fit: dict[str, Any], runs: list[str]) -> None:
    """Leave ``runs`` out (a click on a point or a table row) and fit again."""
    excluded = list(dict.fromkeys([*st.session_state.get("fit-excluded", []), *runs]))
    st.session_state["fit-excluded"] = excluded
    st.session_state.pop("fit-exclude", None)  # the multiselect shows the new list
    selection = {k: v for k, v in fit["selection"].items() if k != "report"}
    selection["exclude"] = excluded
    fitpanel.start_fit(fit["project"], fit["law"], selection, fit["options"])
    st.rerun()


def clicked_runs(event: Any, frame: pd.DataFrame, x: str) -> list[str]:
    """The runs of the points selected on a plot (matched by their x and loss)."""
    points = (getattr(event, "selection", None) or {}).get("points") or []
    if not points or "run" not in frame.columns or x not in frame.columns:
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


def _offer_exclusion(fit: dict[str, Any], event: Any, x: str, key: str) -> None:
    clicked = clicked_runs(event, fit["data"], x)
    if clicked and st.button(f"Leave out {', '.join(clicked)} and refit", key=key):
        exclude_and_refit(fit, clicked)


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
        exclude_and_refit(fit, shown.loc[rows, "run"].astype(str).tolist())


def flags_panel(fit: dict[str, Any]) -> None:
    """What the fit cannot vouch for, beside its numbers: the doubts it carries (bounds,
    undetermined parameters, clipped intervals, confounded inputs...), the extrapolation
    test when it ran, and whether the intervals are still the quick ones."""
    result = fit["result"]
    doubts = result.doubts()
    test = fit.get("extrapolation") or (result.checks or {}).get("extrapolation")
    st.markdown("**Flags**")
    if not fit.get("final", True):
        st.caption("intervals: quick (robust sandwich) until the full ones arrive")
    for doubt in doubts:
        st.warning(md(doubt))
    if test:
        st.caption(
            f"extrapolation test: {test['n_heldout']} held-out point(s) at the largest scale, "
            f"mean relative error {test['mean_rel_error']:.3%}"
        )
    if not doubts:
        st.success("no doubts: converged inside the bounds, every parameter determined")
    for note in (result.checks or {}).get("notes") or []:
        st.caption(md(f"assumed: {note}"))


def parameters(fit: dict[str, Any]) -> None:
    result = fit["result"]
    left, right = st.columns([3, 2])
    with left:
        st.subheader("Parameters")
        table = fitview.params_table(result)
        st.markdown(
            " · ".join(
                f"**{md(r.parameter)}** = {r.value:.5g} ± {r.stderr:.2g}"
                + (f" ({md(r.flags)})" if r.flags else "")
                for r in table.itertuples()
            )
        )
        st.caption(fitview.method_caption(result))
        st.dataframe(table, hide_index=True, width="stretch")
        first = fit.get("first_s")
        st.caption(
            f"{result.n_points} points · objective {result.objective:.4g} · "
            f"AIC {result.aic:.2f} · {getattr(result, 'duration_s', 0.0):.2f} s"
            + (f" · first result after {first:.1f} s" if first is not None else "")
        )
    with right:
        flags_panel(fit)


def _held(fit: dict[str, Any]) -> np.ndarray | None:
    return fitview.held_out_mask(fit["result"], fit["data"], fit.get("extrapolation"))


def _predicted_observed(fit: dict[str, Any]) -> None:
    st.markdown("**Predicted against observed**")
    frame = _memo(
        fit,
        "pred-obs",
        lambda: fitframes.predicted_observed(fit["result"], fit["data"], _held(fit)),
    )
    publish.chart(
        fitfigures.predicted_observed_figure(frame), key="fit-pred-obs", name="predicted-observed"
    )


def isoflop_view(fit: dict[str, Any]) -> None:
    """A law of N and D: its IsoFLOP slices, its frontier, predicted against observed."""
    result, frame = fit["result"], fit["data"]
    law = fitview.law_of(result)
    slices, notes = _memo(fit, "slices", lambda: fitframes.isoflop_slices(result, frame))
    st.subheader("IsoFLOP slices")
    if slices:
        event = publish.chart(
            fitfigures.isoflop_figure(slices),
            key="fit-isoflop",
            name="isoflop-slices",
            on_select="rerun",
            selection_mode="points",
        )
        held = f"; {', '.join(notes['held'])} held at each budget's median" if notes["held"] else ""
        grouping = "exact values" if notes["grouping"] == "exact" else notes["grouping"]
        st.caption(
            md(
                f"Points grouped by compute C = 6ND ({grouping}; {len(slices)} of "
                f"{notes['n_budgets']} budgets with {fitframes.MIN_SLICE_POINTS}+ points "
                f"shown); each curve is the fit's L(N, C / 6N) at that budget{held}; a star "
                "marks the law's optimum."
            )
        )
        _offer_exclusion(fit, event, "params", "fit-drop-slice")
    else:
        st.info(
            f"No compute budget has {fitframes.MIN_SLICE_POINTS} or more points: no IsoFLOP "
            "slice to draw (the points and the fit are in the table and residuals below)."
        )
    left, right = st.columns(2)
    with left:
        if fitview.has_frontier(law):
            st.markdown("**Compute-optimal frontier N_opt(C)**")
            front = _memo(fit, "frontier", lambda: fitframes.frontier(result, frame, slices=slices))
            publish.chart(
                fitfigures.frontier_figure(front, float(getattr(result, "level", 0.95))),
                key="fit-frontier",
                name="frontier",
            )
            st.caption(md(f"Band: {front.band_method}."))
        else:
            st.caption(f"{md(result.law)} has no compute-optimal hook: no frontier.")
    with right:
        _predicted_observed(fit)


def curves_view(fit: dict[str, Any]) -> None:
    """A loss-curve law: each run's curve, the fit and both bands, held-out points marked."""
    result = fit["result"]
    level = float(getattr(result, "level", 0.95))
    frame = _memo(fit, "curves", lambda: fitframes.curve_frame(result, fit["data"], level))
    test = fit.get("extrapolation") or (result.checks or {}).get("extrapolation")
    publish.chart(
        fitfigures.curve_bands_figure(
            frame, level=level, held_from=float(test["scale_threshold"]) if test else None
        ),
        key="fit-curves",
        name="fitted-curves",
    )


def size_view(fit: dict[str, Any]) -> None:
    """A law of one size (or of sizes other than N and D): loss against it, both bands."""
    result, frame = fit["result"], fit["data"]
    event = publish.chart(
        fitview.point_fit_figure(result, frame, held_out=_held(fit)),
        key="fit-plot",
        name="fit",
        on_select="rerun",
        selection_mode="points",
    )
    _offer_exclusion(fit, event, fitview.main_x(result, frame), "fit-drop-point")
    _predicted_observed(fit)


VIEWS = {"isoflop": isoflop_view, "curves": curves_view, "size": size_view}


def grouped(result: Any) -> None:
    from fitting.constraints import group_table

    _, rows = group_table(result)
    st.subheader(f"One fit per {md(result.options['group_by'])}")
    shared = ", ".join(result.options.get("share") or []) or "none"
    st.caption(f"shared parameters: {md(shared)}")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="fit-groups")


def save(fit: dict[str, Any]) -> None:
    final = fit.get("final", True)
    may_save = access.allowed("save_fit")
    if st.button("Save fit", key="fit-save", disabled=not (final and may_save)):
        from fitting.persist import save_result

        user = access.require("save_fit")
        fit_id = save_result(
            store_access.get_store(),
            fit["result"],
            fit["project"],
            fit["selection"],
            created_by=user.name,
        )
        access.audit("save_fit", project=fit["project"], target=str(fit_id))
        store_access.invalidate()
        st.success(f"Saved as fit {fit_id}: use it on the Predict page.")
    if not may_save:
        st.caption("Your role may fit but not save fits.")
    elif not final:
        st.caption("Saving waits for the full intervals.")


def show_result(fit: dict[str, Any]) -> None:
    result, frame = fit["result"], fit["data"]
    if not fit.get("final", True):
        st.info(
            "Point estimate with quick intervals (robust sandwich); the full intervals "
            "follow when the fit's resamples are done."
        )
    selection_summary(fit)
    if result.options.get("group_by"):
        grouped(result)
    parameters(fit)
    kind = fitview.view_kind(fitview.law_of(result))
    if not result.options.get("group_by"):  # a grouped fit: its table above
        VIEWS[kind](fit)
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
    with tab_res:
        res = _memo(fit, "residuals", lambda: fitframes.residual_frame(result, frame))
        inputs = [c for c in res.columns if c not in ("run", "residual")]
        publish.chart(
            fitfigures.residuals_by_input_figure(res, inputs), key="fit-res", name="residuals"
        )
        log = result.options.get("residuals", "log") == "log"
        what = "log observed - log predicted" if log else "observed - predicted"
        st.caption(f"Residuals ({what}) against each input: {md(', '.join(inputs))}.")
    kl = fitview.kl_frame(result, frame)
    x = fitview.main_x(result, frame)
    if kl is not None:
        with tab_kl:
            publish.chart(
                figures.kl_figure(
                    kl[x].to_numpy(),
                    kl["irreducible"].to_numpy(),
                    kl["reducible"].to_numpy(),
                    x_name=x,
                ),
                key="fit-kl",
                name="kl-decomposition",
            )
    with tab_ext:
        extrapolation(fit)
    save(fit)
