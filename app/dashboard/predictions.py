"""Adapters from the Predict page to `fitting.analyses`: one small function per what-if
question, each returning plain numbers or frames the page can show.

Keeping the calls here means a change in an analysis signature touches one file.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np
import pandas as pd

from store.errors import ScalinglabError


def as_dict(value: Any) -> dict[str, Any]:
    """An analysis result (dataclass, mapping, or object) as a flat dict."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, dict):
        return dict(value)
    if hasattr(value, "_asdict"):
        return dict(value._asdict())
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    return {"value": value}


def size_inputs(result: Any) -> tuple[str, ...]:
    """The columns a what-if point needs for this fit's law (the law says which)."""
    from fitting.laws import LAWS

    law = LAWS.get(result.law)
    if law is None:
        return (str((result.options or {}).get("x", "params")),)
    return law.size_inputs(result.options)


def offers(result: Any, analysis: str) -> bool:
    """Whether the fit's law supports `fitting.analyses.<analysis>`."""
    from fitting.laws import supports

    return supports(result.law, analysis)


def loss_at(result: Any, point: dict[str, float], level: float = 0.95) -> dict[str, Any]:
    """Predicted loss at one point with both bands (``lower``/``upper``: the law's
    confidence band; ``pred_lower``/``pred_upper``: the prediction band for a new run) and
    ``beyond``, the flag of a point past the fitted data (empty when within it)."""
    from fitting.result import beyond_text

    frame = pd.DataFrame({k: [float(v)] for k, v in point.items()})
    out: dict[str, Any] = {"loss": float(np.asarray(result.predict(frame), dtype=float)[0])}
    for kind, (lo_key, hi_key) in (
        ("confidence", ("lower", "upper")),
        ("prediction", ("pred_lower", "pred_upper")),
    ):
        try:
            lo, hi = result.predict_band(frame, level=level, kind=kind)
            out[lo_key], out[hi_key] = float(np.asarray(lo)[0]), float(np.asarray(hi)[0])
        except ScalinglabError:  # an older fit without what the band needs: the estimate alone
            pass
    out["beyond"] = beyond_text(result.beyond_data(frame)) if hasattr(result, "beyond_data") else ""
    return out


def fit_notes(result: Any) -> list[str]:
    """What the page says about a fit before any answer: the method of its intervals and
    bands, and one line per doubt (the flags the fit carries)."""
    lines = []
    if hasattr(result, "method_text"):
        lines.append(f"Intervals and bands: {result.method_text()}.")
    return lines + [f"warning: {d}" for d in (result.doubts() if hasattr(result, "doubts") else [])]


def one_row(out: dict[str, Any]) -> dict[str, Any]:
    """An analysis answer for one input as a flat row of scalars (arrays of length 1 are
    unwrapped; `level` and nested values are dropped)."""
    row: dict[str, Any] = {}
    for key, value in out.items():
        if key == "level" or isinstance(value, dict):
            continue
        arr = np.asarray(value)
        if arr.ndim == 0:
            row[key] = value.item() if hasattr(value, "item") else value
        elif arr.size == 1:
            row[key] = arr.reshape(-1)[0].item()
        elif arr.ndim == 1 and arr.dtype.kind == "f" and key.endswith("interval"):
            row[f"{key} lo"], row[f"{key} hi"] = float(arr[0]), float(arr[-1])
    return row


def compute_optimal(result: Any, flops: float) -> dict[str, Any]:
    from fitting import analyses
    from fitting.result import beyond_text

    out = analyses.compute_optimal(result, flops)
    return {**one_row(out), "flags": beyond_text(out.get("flags", {}).get("beyond_data") or {})}


def size_for_reducible_loss(result: Any, target: float) -> dict[str, Any]:
    from fitting import analyses

    return one_row(analyses.size_for_reducible_loss(result, target))


def kl_decomposition(result: Any, point: dict[str, float]) -> dict[str, Any]:
    from fitting import analyses

    frame = pd.DataFrame({k: [float(v)] for k, v in point.items()})
    return one_row(analyses.kl_decomposition(result, frame))


def schedule_curve(result: Any, spec: Any) -> pd.DataFrame:
    """`step, lr, loss` (and `lo, hi` when the fit has a band) for a designed schedule.

    Uses `fitting.analyses.schedule_curve`; without it, predicts directly on a dense frame
    of the schedule's exact per-step LR (what the curve laws are built on)."""
    from fitting import analyses

    if hasattr(analyses, "schedule_curve"):
        return analyses.schedule_curve(result, spec)
    steps = np.arange(1, int(spec.total_steps) + 1)
    frame = pd.DataFrame({"run": "designed", "step": steps, "lr": spec.lr(steps)})
    return frame.assign(loss=np.asarray(result.predict(frame), dtype=float))


def schedule_spec(
    kind: str, *, total: int, warmup: int, peak: float, final: float, decay: int, shape: str
) -> Any:
    """A ScheduleSpec from the designer's controls (fields a shape does not use are left
    at their defaults; multistep drops 10x at 50% and 75% of training)."""
    from fitting.schedules import ScheduleSpec

    extra: dict[str, Any] = {}
    if kind == "wsd":
        extra = {"decay_steps": decay, "decay_shape": shape}
    elif kind == "multistep":
        extra = {"milestones": (total // 2, (3 * total) // 4), "gamma": 0.1}
    if kind != "constant" and kind != "multistep":
        extra["final_lr"] = final
    return ScheduleSpec(kind=kind, peak_lr=peak, total_steps=total, warmup_steps=warmup, **extra)


def encoder_decoder_split(result: Any, budget: float) -> dict[str, Any]:
    from fitting import analyses

    return one_row(analyses.optimal_encoder_decoder_split(result, budget))


def sampling_ratios(result: Any, weights: dict[str, float]) -> pd.DataFrame:
    """Optimal ratio per family with its interval."""
    from fitting import analyses

    out = analyses.optimal_sampling_ratios(result, weights)
    ratios, intervals = out["ratios"], out.get("intervals", {})
    return pd.DataFrame(
        {
            "family": list(ratios),
            "ratio": [float(v) for v in ratios.values()],
            "lower": [float(intervals.get(f, [np.nan, np.nan])[0]) for f in ratios],
            "upper": [float(intervals.get(f, [np.nan, np.nan])[1]) for f in ratios],
        }
    )


def families(result: Any) -> list[str]:
    """Language families of a multilingual fit (from its resolved options)."""
    opts = getattr(result, "law_options", None) or result.options or {}
    return [str(f) for f in opts.get("families", [])]


def allocation(result: Any, frame: pd.DataFrame, budgets: list[float]) -> dict[str, Any]:
    """Chinchilla's three approaches on the fit's data (Approach 3 is the saved fit itself,
    under the accounting stored with it)."""
    from fitting.analyses.allocation_report import allocation_report

    return allocation_report(frame, budgets, result=result)


def allocation_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per (approach, budget): a, b, N_opt, D_opt, tokens per parameter, each with
    its interval, and the approach's flags (or why it could not run)."""
    rows = []
    for ans in report["approaches"]:
        if "error" in ans:
            rows.append({"approach": ans["title"], "flags": f"not available: {ans['error']}"})
            continue
        for at in ans["at_budgets"]:
            row: dict[str, Any] = {"approach": ans["title"], "C": at["flops"]}
            for key in ("a", "b"):
                row[key], (row[f"{key} lo"], row[f"{key} hi"]) = ans[key], ans[f"{key}_interval"]
            for key in ("N_opt", "D_opt", "tokens_per_param"):
                row[key] = at[key]
                row[f"{key} lo"], row[f"{key} hi"] = at[f"{key}_interval"]
            row["Hoffmann a"] = ans["hoffmann2022"]["a"]
            row["flags"] = "; ".join(ans.get("flags") or [])
            rows.append(row)
    return pd.DataFrame(rows)
