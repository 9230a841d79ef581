"""Approach 1 of Hoffmann et al. 2022: the envelope of the training curves.

At each FLOP value C (C counted by the accounting from each row's tokens, C = 6ND by
default) the lowest loss any run reached and the N of that run; N_opt ∝ C^a and
D_opt ∝ C^b are fitted through those (C, N) pairs.

- Curves (runs with several rows): each run's loss is interpolated linearly in log C on
  ``n_grid`` log-spaced FLOP values between the smallest and the second-largest final
  compute of the runs (below, every run is still early in training and the smallest wins
  by default; above, one run is left).
  Intervals: the runs are resampled with replacement (``bootstrap`` times). The grid values
  are not independent, so no t interval is added.
- Final points only (one row per run, e.g. a table of finished models): the envelope at C
  is the lowest final loss among the runs whose compute falls in the same bin of
  ``bin_width`` decades (bins holding at least 2 runs). Intervals: points resampled within
  bins, widened to the line's t interval (the bins are independent).

Flags: few distinct sizes on the envelope (the fitted line then runs through a staircase),
and an envelope held by the largest (smallest) model at the top (bottom) of the range,
where larger (smaller) models were not trained and a is biased towards 0.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fitting.accounting import Accounting
from fitting.analyses.loglines import allocation_frame, answer, log_bins, tokens_model
from fitting.errors import FitError

MIN_SIZES = 3


def envelope(
    frame: pd.DataFrame,
    budgets: Sequence[float] | np.ndarray = (),
    *,
    accounting: Accounting | dict[str, str] | str | None = None,
    n_grid: int = 200,
    bin_width: float = 0.1,
    bootstrap: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Approach 1 on a canonical frame (curves, or one final row per run)."""
    t0 = time.perf_counter()
    acc = Accounting.coerce(accounting)
    rows = allocation_frame(frame, acc)
    fpt = tokens_model(rows, acc)
    rng = np.random.default_rng(seed)
    c = np.atleast_1d(np.asarray(budgets, dtype=float))
    curves = rows.groupby("run")["flops"].nunique().max() >= 2
    if curves:
        log_c, log_n, runs = _curve_envelope(rows, n_grid)
        replicates = []
        names = np.array(sorted(rows["run"].unique()))
        for _ in range(max(int(bootstrap), 0)):
            pick = rng.choice(names, size=names.size, replace=True)
            sample = rows[rows["run"].isin(pick)]
            if sample["params"].nunique() < 2:
                continue
            rc, rn, _ = _curve_envelope(sample, n_grid)
            replicates.append((rc, rn, rc - np.log(fpt(np.exp(rn)))))
        mode, with_t = "curves", False
    else:
        log_c, log_n, labels, pts = _point_envelope(rows, bin_width)
        n_boot = max(int(bootstrap), 0)
        loss_all = pts["loss"].to_numpy()
        lc_all, ln_all = np.log(pts["flops"].to_numpy()), np.log(pts["params"].to_numpy())
        boot_c, boot_n = [], []  # per bin: each resample's envelope point (within bins)
        for label in np.unique(labels):
            rows_in = np.flatnonzero(labels == label)
            idx = rows_in[rng.integers(0, rows_in.size, size=(n_boot, rows_in.size))]
            bc, bn = _lowest(loss_all[idx], lc_all[idx], ln_all[idx])
            boot_c.append(bc)
            boot_n.append(bn)
        replicates = []
        for rc_a, rn_a in zip(np.array(boot_c).T, np.array(boot_n).T, strict=True):
            replicates.append((rc_a, rn_a, rc_a - np.log(fpt(np.exp(rn_a)))))
        runs = len(pts)
        mode, with_t = "final points", True
    log_d = log_c - np.log(fpt(np.exp(log_n)))
    out = answer(log_c, log_n, log_d, replicates, c, fpt, level, with_t=with_t)
    out.update(
        approach="envelope",
        mode=mode,
        accounting=acc.to_dict(),
        accounting_text=acc.describe(),
        n_points=len(rows),
        n_runs=int(runs),
        flags=_flags(rows, log_c, log_n, mode),
        duration_s=time.perf_counter() - t0,
    )
    return out


def _curve_envelope(rows: pd.DataFrame, n_grid: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(log C grid, log N of the lowest curve there, number of runs)."""
    curves = []
    for _, g in rows.groupby("run", sort=False):
        g = g.sort_values("flops")
        lc, loss = np.log(g["flops"].to_numpy()), g["loss"].to_numpy()
        keep = np.r_[True, np.diff(lc) > 0]
        if keep.sum() >= 2:
            curves.append((lc[keep], loss[keep], float(np.log(g["params"].iloc[-1]))))
    if len(curves) < 2:
        raise FitError("the envelope needs two or more runs with loss curves")
    # Up to the second-largest run's end: beyond it only one run is left to be "lowest".
    ends = np.sort([cv[0][-1] for cv in curves])
    grid = np.linspace(ends[0], ends[-2], int(n_grid))
    table = np.full((len(curves), grid.size), np.inf)
    for i, (lc, loss, _) in enumerate(curves):
        inside = (grid >= lc[0]) & (grid <= lc[-1])
        table[i, inside] = np.interp(grid[inside], lc, loss)
    best = np.argmin(table, axis=0)
    covered = np.isfinite(table[best, np.arange(grid.size)])
    sizes = np.array([cv[2] for cv in curves])
    return grid[covered], sizes[best[covered]], len(curves)


def _point_envelope(
    rows: pd.DataFrame, width: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Per bin of log C holding two or more runs: the lowest-loss run's log C and log N."""
    labels = log_bins(np.log(rows["flops"].to_numpy()), width * np.log(10.0))
    counts = pd.Series(labels).map(pd.Series(labels).value_counts()).to_numpy()
    keep = counts >= 2
    pts, labels = rows[keep].reset_index(drop=True), labels[keep]
    if np.unique(labels).size < 2:
        raise FitError(
            "the envelope of final points needs two or more compute bins holding at least "
            f"two runs each (bin width {width} decades)"
        )
    log_c, log_n = [], []
    for label in np.unique(labels):
        members = pts[labels == label]
        c, n = _lowest(
            members["loss"].to_numpy()[None, :],
            np.log(members["flops"].to_numpy())[None, :],
            np.log(members["params"].to_numpy())[None, :],
        )
        log_c.append(c[0])
        log_n.append(n[0])
    return np.array(log_c), np.array(log_n), labels, pts


def _lowest(
    loss: np.ndarray, log_c: np.ndarray, log_n: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: log C and log N of the lowest loss, averaged over ties (digitised losses
    repeat), so the envelope does not depend on the order of the rows."""
    tied = loss == loss.min(axis=1, keepdims=True)
    count = tied.sum(axis=1)
    return (log_c * tied).sum(axis=1) / count, (log_n * tied).sum(axis=1) / count


def _flags(rows: pd.DataFrame, log_c: np.ndarray, log_n: np.ndarray, mode: str) -> list[str]:
    out = []
    if mode == "final points":
        out.append("no loss curves: the envelope is taken over final losses per compute bin")
    sizes = np.unique(log_n)
    if sizes.size < MIN_SIZES:
        out.append(f"the envelope passes through only {sizes.size} model size(s)")
    all_sizes = np.log(pd.to_numeric(rows["params"]).to_numpy())
    order = np.argsort(log_c)
    if np.isclose(log_n[order[-1]], all_sizes.max()):
        out.append("the largest model holds the envelope at the top of the range: a may be low")
    if np.isclose(log_n[order[0]], all_sizes.min()):
        out.append("the smallest model holds the envelope at the bottom of the range")
    return out
