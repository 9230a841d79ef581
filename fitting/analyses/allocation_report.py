"""The three compute-optimal allocation approaches of Hoffmann et al. 2022 side by side on
one selection: Approach 1 (`fitting.analyses.envelope`), Approach 2
(`fitting.analyses.isoflop`) and Approach 3 (a parametric law's closed form,
`fitting.analyses.allocation.compute_optimal_exponents`), each giving a, b, N_opt, D_opt
and tokens per parameter at the same budgets with intervals and flags, under one FLOP and
size accounting (`fitting.accounting`) that the answer states.

An approach that cannot run on the selection (no curves, too few budgets) is reported with
its reason instead of stopping the others.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fitting.accounting import Accounting, per_token_model
from fitting.errors import DataWarning, FitError
from fitting.result import FitResult

APPROACHES = ("envelope", "isoflop", "parametric")
TITLES = {
    "envelope": "1: envelope of training curves",
    "isoflop": "2: IsoFLOP profiles",
    "parametric": "3: parametric fit",
}
DEFAULT_BUDGETS = (1e21, 5.76e23)  # Hoffmann et al.'s Gopher budget is 5.76e23
# Hoffmann et al. 2022, Table 2 (on their runs; for comparison, not for other data).
HOFFMANN_A = {"envelope": 0.50, "isoflop": 0.49, "parametric": 0.46}
HOFFMANN_B = {"envelope": 0.50, "isoflop": 0.51, "parametric": 0.54}


def parametric_law(frame: pd.DataFrame) -> str:
    """The first registered law with a compute-optimal allocation whose inputs the frame
    has (asked of the laws, so no law is named here)."""
    from fitting.laws import LAWS, laws_supporting

    for name in laws_supporting("compute_optimal"):
        if set(LAWS[name].inputs) <= set(frame.columns) and LAWS[name].kind == "points":
            return name
    raise FitError("no law with a compute-optimal allocation takes this data's columns")


def allocation_report(
    frame: pd.DataFrame,
    budgets: Sequence[float] = DEFAULT_BUDGETS,
    *,
    accounting: Accounting | dict[str, str] | str | None = None,
    law: str | None = None,
    result: FitResult | None = None,
    grouping: str = "auto",
    bin_width: float = 0.1,
    bootstrap: int = 500,
    fit_bootstrap: int = 200,
    level: float = 0.95,
    seed: int = 0,
    approaches: Sequence[str] = APPROACHES,
) -> dict[str, Any]:
    """Every approach in ``approaches`` on ``frame``; ``result`` (a saved fit) stands in for
    Approach 3's fit, and then its own accounting is used unless one is given."""
    from fitting.analyses.allocation import compute_optimal_exponents
    from fitting.analyses.envelope import envelope
    from fitting.analyses.isoflop import isoflop

    t0 = time.perf_counter()
    unknown = sorted(set(approaches) - set(APPROACHES))
    if unknown:
        raise FitError(f"unknown approach {unknown[0]!r}; choose from {', '.join(APPROACHES)}")
    c = np.atleast_1d(np.asarray(list(budgets) or DEFAULT_BUDGETS, dtype=float))
    if not (np.isfinite(c).all() and (c > 0).all()):
        raise FitError(f"budgets must be positive FLOP counts, got {list(budgets)!r}")
    if accounting is None and result is not None:
        accounting = (result.options or {}).get("accounting")
    acc = Accounting.coerce(accounting)
    if not 0 < level < 1:
        raise FitError(f"level must be between 0 and 1, not {level!r}")
    from fitting.analyses.loglines import allocation_frame

    allocation_frame(frame, acc)  # the data and the accounting fit together, or FitError now
    common = {"accounting": acc, "bootstrap": bootstrap, "level": level, "seed": seed}
    out: list[dict[str, Any]] = []
    for name in APPROACHES:
        if name not in approaches:
            continue
        started = time.perf_counter()
        try:
            if name == "envelope":
                answer = envelope(frame, c, bin_width=bin_width, **common)
            elif name == "isoflop":
                answer = isoflop(frame, c, grouping=grouping, bin_width=bin_width, **common)
            else:
                answer = _parametric(
                    frame,
                    c,
                    acc,
                    law,
                    result,
                    fit_bootstrap,
                    level,
                    seed,
                    compute_optimal_exponents,
                )
        except FitError as err:
            answer = {
                "approach": name,
                "error": err.message if hasattr(err, "message") else str(err),
            }
        answer["title"] = TITLES[name]
        answer["hoffmann2022"] = {"a": HOFFMANN_A[name], "b": HOFFMANN_B[name]}
        answer["duration_s"] = time.perf_counter() - started
        out.append(answer)
    return {
        "budgets": c.tolist(),
        "accounting": acc.to_dict(),
        "accounting_text": acc.describe(),
        "level": level,
        "approaches": out,
        "duration_s": time.perf_counter() - t0,
    }


def _parametric(
    frame: pd.DataFrame,
    c: np.ndarray,
    acc: Accounting,
    law: str | None,
    result: FitResult | None,
    fit_bootstrap: int,
    level: float,
    seed: int,
    exponents: Any,
) -> dict[str, Any]:
    import fitting
    from fitting.analyses.loglines import allocation_frame
    from fitting.data import select_for_law

    if result is None:
        name = law or parametric_law(frame)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # left-out runs land in checks
            rows = select_for_law(fitting.LAWS[name], frame)
        result = fitting.fit(
            name, rows, accounting=acc.to_dict(), bootstrap=fit_bootstrap, seed=seed, level=level
        )
    fpt = None
    if acc.flops != "6ND":  # the law's closed form assumes C = 6ND
        fpt = per_token_model(allocation_frame(frame, acc), acc)
    answer = exponents(result, c, level=level, flops_per_token=fpt)
    answer.update(
        approach="parametric",
        law=result.law,
        params=result.params,
        accounting=acc.to_dict(),
        accounting_text=acc.describe(),
        n_points=result.n_points,
        flags=result.doubts(),
    )
    return answer


# --- text ---------------------------------------------------------------------------------


def _g(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}g}"


def _iv(pair: Sequence[float], digits: int = 3) -> str:
    return f"[{_g(pair[0], digits)}, {_g(pair[1], digits)}]"


def format_report(report: dict[str, Any]) -> str:
    """The report as text: one block per approach, every number with its interval."""
    pct = round(100 * report["level"])
    lines = [f"accounting: {report['accounting_text']}   intervals: {pct}%"]
    for ans in report["approaches"]:
        lines.append("")
        ref = ans["hoffmann2022"]
        head = f"Approach {ans['title']}"
        if "law" in ans:
            head += f" (law {ans['law']})"
        lines.append(head)
        if "error" in ans:
            lines.append(f"  not available: {ans['error']}")
            continue
        lines.append(
            f"  a = {ans['a']:.3f} {_iv(ans['a_interval'])}   b = {ans['b']:.3f} "
            f"{_iv(ans['b_interval'])}   (Hoffmann et al. 2022 on their runs: a = "
            f"{ref['a']:.2f}, b = {ref['b']:.2f})"
        )
        for row in ans["at_budgets"]:
            lines.append(
                f"  C = {_g(row['flops'])}: N_opt {_g(row['N_opt'])} {_iv(row['N_opt_interval'])}"
                f"   D_opt {_g(row['D_opt'])} {_iv(row['D_opt_interval'])}"
                f"   tokens/param {_g(row['tokens_per_param'])} "
                f"{_iv(row['tokens_per_param_interval'])}"
            )
        lines.append(f"  intervals: {ans['interval_method']}; {ans['duration_s']:.2f} s")
        lines += [f"  flag: {flag}" for flag in ans.get("flags") or []]
    return "\n".join(lines)
