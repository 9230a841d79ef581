"""Predict: the what-if questions, answered with a saved fit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app.dashboard import figures, predictions, store_access
from app.dashboard.safetext import md
from fitting.analyses import allocation_record
from store.errors import ScalinglabError


def pick_fit() -> tuple[Any, dict[str, Any]] | None:
    fits = store_access.fits(store_access.store_root())
    if fits is None or len(fits) == 0:
        st.info("No saved fits yet: fit a law on the Fit page and save it.")
        return None
    records = fits.sort_values("id", ascending=False).to_dict("records")
    labels = {
        int(r["id"]): f"fit {r['id']}: {r['law']} on {r['project']} ({r['created_at']})"
        for r in records
    }
    fit_id = st.selectbox("Saved fit", list(labels), format_func=labels.get, key="pred-fit")
    record = next(r for r in records if int(r["id"]) == fit_id)
    if allocation_record.is_allocation(record["law"]):
        return None, record  # a saved allocation report: read, not refitted
    return store_access.load_result(fit_id), record


def saved_allocation(record: dict[str, Any]) -> None:
    """A saved allocation report (an allocation job's): the three approaches as computed."""
    report = allocation_record.report_of(record)
    st.subheader("Compute-optimal allocation, three ways (Hoffmann et al. 2022)")
    job = record.get("job_id")
    made = f"job {int(job)}" if job is not None and not pd.isna(job) else "a saved report"
    st.caption(
        f"Saved by {made} on {record['created_at']} · accounting: "
        f"{report['accounting_text']} · intervals at {report['level']:.0%}."
    )
    st.dataframe(predictions.allocation_table(report), hide_index=True, width="stretch")


def observed(record: dict[str, Any], reduce: str | None = None) -> pd.DataFrame:
    """The data the fit was trained on (re-read from the store by its selection)."""
    from fitting.jobs import select_data

    selection = store_access.json_field(record.get("selection"))
    if reduce:
        selection["reduce"] = reduce
    try:
        return select_data(store_access.get_store(), record["project"], selection)
    except ScalinglabError:
        return pd.DataFrame()


def bigger(result: Any, seen: pd.DataFrame) -> None:
    st.subheader("Loss at a bigger scale")
    cols = st.columns(len(predictions.size_inputs(result)))
    point = {}
    for col, name in zip(cols, predictions.size_inputs(result), strict=True):
        largest = pd.to_numeric(seen.get(name, pd.Series(dtype=float)), errors="coerce").max()
        default = float(largest) * 10 if pd.notna(largest) and largest > 0 else 1e9
        point[name] = col.number_input(
            name, min_value=1.0, value=default, format="%.4g", key=f"pred-{name}"
        )
    out = predictions.loss_at(result, point)
    band = ""
    if "lower" in out:
        band += f" · 95% confidence band (the law) {out['lower']:.4f} – {out['upper']:.4f}"
    if "pred_lower" in out:
        band += (
            f" · 95% prediction band (a new run) {out['pred_lower']:.4f} – {out['pred_upper']:.4f}"
        )
    c1, c2, c3 = st.columns(3)
    c1.metric("Predicted loss (nats/token)", f"{out['loss']:.4f}")
    st.caption(f"at {', '.join(f'{k} = {v:.3g}' for k, v in point.items())}{band}")
    if out.get("beyond"):
        st.warning(out["beyond"])
    try:  # How far from the data's entropy: L = S (irreducible) + KL (reducible).
        kl = predictions.kl_decomposition(result, point)
    except ScalinglabError:
        return
    c2.metric("irreducible (entropy estimate)", f"{kl['irreducible']:.4f}")
    c3.metric(
        "reducible (KL to the data)",
        f"{kl['reducible']:.4f}",
        help=f"95% interval {kl['reducible_lo']:.4f} – {kl['reducible_hi']:.4f}",
    )


def compute_optimal(result: Any) -> None:
    st.subheader("Compute-optimal N and D for a FLOP budget")
    flops = st.number_input(
        "FLOP budget C", min_value=1.0, value=1e21, format="%.3g", key="pred-flops"
    )
    out = predictions.compute_optimal(result, flops)
    c1, c2, c3 = st.columns(3)
    for col, key, label, fmt in (
        (c1, "N_opt", "N_opt (parameters)", ".4g"),
        (c2, "D_opt", "D_opt (tokens)", ".4g"),
        (c3, "tokens_per_param", "tokens per parameter", ".3g"),
    ):
        col.metric(label, f"{out[key]:{fmt}}")
        col.caption(f"95% interval {out[f'{key}_lo']:{fmt}} – {out[f'{key}_hi']:{fmt}}")
    if out.get("flags"):
        st.warning(out["flags"])
    st.dataframe(pd.DataFrame([out]), hide_index=True, width="stretch")


def allocation(result: Any, record: dict[str, Any]) -> None:
    st.subheader("Compute-optimal allocation, three ways (Hoffmann et al. 2022)")
    text = st.text_input("FLOP budgets (comma-separated)", "1e21, 5.76e23", key="pred-alloc-c")
    try:
        budgets = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        st.error(f"not a list of numbers: {md(repr(text))}")
        return
    if not st.button("Compare the approaches", key="pred-alloc-run"):
        st.caption(
            "Approach 1: envelope of the training curves; 2: IsoFLOP parabolas per budget; "
            "3: this fit's closed form. Each with bootstrap intervals and flags."
        )
        return
    seen = observed(record, reduce="all")  # curves for the envelope; final points for the rest
    if seen.empty:
        st.info("The fit's data are no longer in the store: nothing to compare against.")
        return
    report = predictions.allocation(result, seen, budgets)
    st.caption(f"Accounting: {report['accounting_text']}. Intervals at {report['level']:.0%}.")
    st.dataframe(predictions.allocation_table(report), hide_index=True, width="stretch")


def reducible_target(result: Any) -> None:
    st.subheader("Model size for a target reducible loss")
    target = st.number_input(
        "Target reducible loss (nats/token)",
        min_value=1e-6,
        value=0.05,
        format="%.4g",
        key="pred-target",
    )
    out = predictions.size_for_reducible_loss(result, target)
    st.metric(f"{out.get('variable', 'size')} needed", f"{out['size']:.4g}")
    st.caption(f"95% interval {out['lo']:.4g} – {out['hi']:.4g}")


def schedule_designer(result: Any, record: dict[str, Any]) -> None:
    st.subheader("LR-schedule designer")
    c = st.columns(6)
    kind = c[0].selectbox(
        "Shape", ["cosine", "wsd", "linear", "constant", "multistep"], key="pred-kind"
    )
    total = int(c[1].number_input("Total steps", 10, 10_000_000, 24_000, key="pred-total"))
    warmup = int(c[2].number_input("Warmup", 0, 10_000_000, 2_160, key="pred-warmup"))
    peak = c[3].number_input("Peak LR", 1e-7, 1.0, 3e-4, format="%.2e", key="pred-peak")
    final = c[4].number_input("Final LR", 0.0, 1.0, 3e-5, format="%.2e", key="pred-final")
    decay = int(c[5].number_input("Decay steps (wsd)", 0, 10_000_000, 4_000, key="pred-decay"))
    shape = st.radio(
        "Decay shape (wsd)",
        ["linear", "cosine", "exponential"],
        horizontal=True,
        key="pred-shape",
    )
    spec = predictions.schedule_spec(
        kind, total=total, warmup=warmup, peak=peak, final=final, decay=decay, shape=shape
    )
    curve = predictions.schedule_curve(result, spec)
    band = pred_band = None
    if {"lo", "hi"} <= set(curve.columns) and np.isfinite(curve[["lo", "hi"]].to_numpy()).all():
        band = (curve["lo"].to_numpy(), curve["hi"].to_numpy())
    pred_cols = ["pred_lo", "pred_hi"]
    if set(pred_cols) <= set(curve.columns) and np.isfinite(curve[pred_cols].to_numpy()).all():
        pred_band = (curve["pred_lo"].to_numpy(), curve["pred_hi"].to_numpy())
    seen = observed(record, reduce="all")
    seen = seen[["run", "step", "loss"]].dropna() if {"run", "step", "loss"} <= set(seen) else None
    fig = figures.schedule_figure(
        curve["step"].to_numpy(),
        curve["lr"].to_numpy(),
        curve["loss"].to_numpy(),
        seen,
        band=band,
        prediction_band=pred_band,
        band_name="95% confidence band (the law)",
        prediction_name="95% prediction band (a new run)",
    )
    st.plotly_chart(fig, key="pred-schedule")
    st.metric("Predicted final loss", f"{float(curve['loss'].iloc[-1]):.4f}")


def encoder_decoder(result: Any) -> None:
    st.subheader("Optimal encoder/decoder split")
    budget = st.number_input(
        "Parameter budget", min_value=1.0, value=1e9, format="%.3g", key="pred-budget"
    )
    out = predictions.encoder_decoder_split(result, budget)
    st.dataframe(pd.DataFrame([out]), hide_index=True, width="stretch")


def multilingual(result: Any) -> None:
    st.subheader("Optimal multilingual sampling ratios")
    fams = predictions.families(result)
    cols = st.columns(max(1, len(fams)))
    weights = {
        f: col.slider(f"weight: {f}", 0.0, 1.0, 1.0, 0.05, key=f"pred-w-{f}")
        for col, f in zip(cols, fams, strict=False)
    }
    ratios = predictions.sampling_ratios(result, weights)
    st.plotly_chart(
        figures.bar_figure(list(ratios), list(ratios.values()), y_title="sampling ratio p*"),
        key="pred-ratios",
    )


def main() -> None:
    st.title("Predict")
    picked = pick_fit()
    if picked is None:
        return
    result, record = picked
    if result is None:
        saved_allocation(record)
        return
    import fitting

    law_obj = fitting.LAWS.get(result.law)
    st.code(f"{result.law}: {law_obj.formula}" if law_obj else result.law, language=None)
    for note in predictions.fit_notes(result):
        show = st.warning if note.startswith("warning: ") else st.caption
        show(md(note.removeprefix("warning: ")))  # notes name runs
    # One section per question the fit's law can answer (the law says which).
    sections = []
    if predictions.offers(result, "schedule_curve"):
        sections.append(lambda: schedule_designer(result, record))
    else:
        sections.append(lambda: bigger(result, observed(record)))
    if predictions.offers(result, "compute_optimal"):
        sections.append(lambda: compute_optimal(result))
        sections.append(lambda: allocation(result, record))
    # "Model size" for a target: asked where the parameter count is the fit's one size input.
    one_size = predictions.size_inputs(result) == ("params",)
    if one_size and predictions.offers(result, "size_for_reducible_loss"):
        sections.append(lambda: reducible_target(result))
    if predictions.offers(result, "optimal_encoder_decoder_split"):
        sections.append(lambda: encoder_decoder(result))
    if predictions.offers(result, "optimal_sampling_ratios"):
        sections.append(lambda: multilingual(result))
    for section in sections:
        try:
            section()
        except (ScalinglabError, ValueError, KeyError) as err:
            st.error(md(err))


main()
