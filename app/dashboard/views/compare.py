"""Compare: saved fits (several laws, selections or approaches) and the allocation
approaches of Hoffmann et al. 2022, overlaid with their bands on shared axes, with one
table of their answers at a chosen N, D and C. The choice lives in the URL (`share`):
a copied link reopens the same comparison."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app.dashboard import comparison, publish, reportview, share, store_access
from app.dashboard.safetext import md
from store.errors import ScalinglabError

POINT_INPUTS = (
    ("N", "N (parameters)", "%.4g"),
    ("D", "D (tokens)", "%.4g"),
    ("C", "C (training FLOPs)", "%.4g"),
)


@st.cache_resource(max_entries=32, show_spinner=False)
def _compared(
    root: str, fit_id: int, created_at: str, _record: dict[str, Any]
) -> comparison.Compared:
    """A saved fit and its curves, kept across reruns and sessions (a saved fit never
    changes). The store, the id and the time it was saved name it."""
    del root, created_at  # the cache key: a store made anew at the same path reuses ids
    return comparison.Compared(
        fit_id, comparison.fit_label(_record), store_access.load_result(fit_id)
    )


def pick_fits(records: list[dict[str, Any]]) -> list[int]:
    ids = [int(r["id"]) for r in records]
    labels = {int(r["id"]): f"{comparison.fit_label(r)} ({r['created_at']})" for r in records}
    share.seed("cmp-fits", [i for i in share.read_ids("fits") if i in labels])
    return list(
        st.multiselect(
            "Saved fits to compare",
            ids,
            format_func=labels.get,
            key="cmp-fits",
            placeholder="choose two or more saved fits",
        )
    )


def pick_point() -> dict[str, float | None]:
    """N, D and C of the table's answers (from the link on a session's first run)."""
    cols = st.columns(len(POINT_INPUTS))
    at: dict[str, float | None] = {}
    for col, (symbol, label, fmt) in zip(cols, POINT_INPUTS, strict=True):
        share.seed(f"cmp-{symbol}", share.read_number(symbol) or comparison.DEFAULT_AT[symbol])
        at[symbol] = float(col.number_input(label, min_value=1.0, format=fmt, key=f"cmp-{symbol}"))
    return at


def fit_frame(record: dict[str, Any], result: Any) -> pd.DataFrame:
    """The rows the fit saw, re-read from the store by its stored selection."""
    from fitting.engine import get_law, split_options
    from fitting.selection import select

    stored = store_access.json_field(record.get("selection"))
    selection = {k: v for k, v in stored.items() if k != "report"}
    try:
        data = store_access.selection_frame(store_access.store_root(), record["project"], selection)
        engine_keys = ("split", "where", "exclude", "reduce", "checkpoints")
        engine = {k: selection[k] for k in engine_keys if selection.get(k)}
        _, law_side = split_options(dict(result.options or {}))
        law_side = {k: v for k, v in law_side.items() if k not in ("group_by", "share", "groups")}
        return select(get_law(result.law), data, engine, **law_side).frame
    except (ScalinglabError, KeyError, ValueError, TypeError):
        return pd.DataFrame()


def allocation_controls(items: list[comparison.Compared], c: float | None) -> None:
    """Compute the three approaches on one fit's data, or open a saved report."""
    from fitting.analyses.allocation_report import DEFAULT_BUDGETS

    with st.expander("Allocation approaches (Hoffmann et al. 2022)", expanded=False):
        able = [item for item in items if comparison.has_frontier(item.result)]
        if able:
            labels = {item.fit_id: item.label for item in able}
            fit_id = st.selectbox(
                "Data and Approach 3 from", list(labels), format_func=labels.get, key="cmp-alloc"
            )
            if st.button("Compute the three approaches", key="cmp-alloc-go"):
                budgets = sorted({float(c), *DEFAULT_BUDGETS} if c else set(DEFAULT_BUDGETS))
                _compute_allocation(next(i for i in able if i.fit_id == fit_id), budgets)
        upload = st.file_uploader(
            "…or open a saved report (the JSON of `scalinglab allocate --json`)",
            type=["json"],
            key="cmp-alloc-file",
        )
        if upload is not None:
            _open_allocation(upload)


def _compute_allocation(item: comparison.Compared, budgets: list[float]) -> None:
    from app.dashboard import predictions
    from fitting.jobs import select_data

    record = st.session_state["cmp-records"][item.fit_id]
    selection = store_access.json_field(record.get("selection"))
    selection = {k: v for k, v in selection.items() if k != "report"} | {"reduce": "all"}
    with st.spinner("Envelope, IsoFLOP and parametric approaches, with bootstrap intervals…"):
        try:
            seen = select_data(store_access.get_store(), record["project"], selection)
            report = predictions.allocation(item.result, seen, budgets)
        except ScalinglabError as err:
            st.error(md(err))
            return
    st.session_state["cmp-allocation"] = {"report": report, "source": item.label}


def _open_allocation(upload: Any) -> None:
    key = (upload.name, upload.size)
    if st.session_state.get("cmp-allocation-file") == key:
        return
    try:
        report = json.loads(upload.getvalue().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        st.error(f"not a JSON file: {md(err)}")
        return
    if not isinstance(report, dict) or not isinstance(report.get("approaches"), list):
        st.error("not an allocation report: it has no list of approaches")
        return
    st.session_state["cmp-allocation-file"] = key
    st.session_state["cmp-allocation"] = {"report": report, "source": f"file {upload.name}"}


def draw_figures(items: list[comparison.Compared], allocation: dict[str, Any] | None) -> None:
    groups: dict[str, list[comparison.Compared]] = {}
    for item in items:
        axis = comparison.loss_axis(item.result)
        if axis is None:
            st.caption(
                f"{md(item.label)}: a law of loss curves over steps, compared in the table only."
            )
            continue
        groups.setdefault(axis, []).append(item)
    for axis, group in groups.items():
        st.subheader(f"Loss against {comparison.SYMBOL.get(axis, axis)}")
        if axis == "flops" and any(len(comparison.size_inputs(i.result)) > 1 for i in group):
            st.caption("Laws of N and D are drawn along their compute-optimal frontier.")
        publish.chart(
            comparison.loss_figure(group, axis), key=f"cmp-loss-{axis}", name=f"compare-loss-{axis}"
        )
    if any(comparison.has_frontier(i.result) for i in items) or allocation:
        st.subheader("Compute-optimal frontier N_opt(C)")
        publish.chart(
            comparison.frontier_figure(items, allocation),
            key="cmp-frontier",
            name="compare-frontier",
        )


def _with_interval(row: pd.Series, key: str, digits: str) -> str:
    value = row.get(key)
    if value is None or not np.isfinite(value):
        return ""
    lo, hi = row.get(f"{key} lo", np.nan), row.get(f"{key} hi", np.nan)
    band = f" [{lo:{digits}}, {hi:{digits}}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    return f"{value:{digits}}{band}"


def answers(table: pd.DataFrame, at: dict[str, float | None]) -> None:
    """The answers side by side: st.table renders Markdown, so every cell is escaped."""
    shown = pd.DataFrame(
        {
            "compared": table["compared"],
            "loss at": table.get("loss at", ""),
            "loss [95%]": [_with_interval(r, "loss", ".4f") for _, r in table.iterrows()],
            f"N_opt at C={at['C']:.3g} [95%]": [
                _with_interval(r, "N_opt", ".3g") for _, r in table.iterrows()
            ],
            f"D_opt at C={at['C']:.3g} [95%]": [
                _with_interval(r, "D_opt", ".3g") for _, r in table.iterrows()
            ],
            "intervals": table.get("method", ""),
            "flags": table["flags"],
        }
    ).fillna("")
    st.table(shown.map(md).rename(columns=md), border="horizontal")


def main() -> None:
    st.title("Compare")
    fits = store_access.fits(store_access.store_root())
    if fits is None or len(fits) == 0:
        st.info("No saved fits yet: fit a law on the Fit page and save it.")
        return
    records = fits.sort_values("id", ascending=False).to_dict("records")
    st.session_state["cmp-records"] = {int(r["id"]): r for r in records}
    chosen = pick_fits(records)
    at = pick_point()
    share.publish(
        {
            "fits": share.encode_ids(chosen),
            **{k: share.encode_number(v) for k, v in at.items() if v is not None},
        }
    )
    if not chosen:
        st.caption("The link of this page keeps the fits and N, D, C chosen here.")
        return
    by_id = st.session_state["cmp-records"]
    items = []
    for fit_id in chosen:
        try:
            items.append(
                _compared(
                    store_access.store_root(),
                    fit_id,
                    str(by_id[fit_id]["created_at"]),
                    by_id[fit_id],
                )
            )
        except ScalinglabError as err:
            st.error(f"fit {fit_id}: {md(err)}")
    allocation_controls(items, at["C"])
    held = st.session_state.get("cmp-allocation")
    allocation = held["report"] if held else None
    if held:
        st.caption(
            f"Allocation approaches from {md(held['source'])}: "
            f"{md(allocation.get('accounting_text', ''))}"
        )
    draw_figures(items, allocation)
    st.subheader("Answers")
    answers(comparison.answers_table(items, at, allocation), at)
    st.subheader("Reports")
    for item in items:
        record = by_id[item.fit_id]
        st.caption(md(item.label))
        reportview.report_buttons(
            item.result,
            fit_frame(record, item.result),
            key=f"cmp-report-{item.fit_id}",
            fit_id=item.fit_id,
            project=str(record["project"]),
            created_at=str(record["created_at"]),
        )


main()
