"""Approach 2 of Hoffmann et al. 2022: IsoFLOP profiles.

Points are grouped by compute budget, a parabola in log N is fitted to the loss of each
budget, its vertex is N_opt(C), and N_opt ∝ C^a, D_opt ∝ C^b are fitted across budgets.
Grouping (``grouping``):

- ``exact``: the points that share a compute value (to 6 significant digits);
- ``bins``: bins of ``bin_width`` decades in log C (their offset chosen so clustered
  budgets are not split);
- ``checkpoints``: Porian et al. 2024's construction from intermediate checkpoints: at each
  of ``flop_values`` (default ``per_decade`` per decade) every run whose curve spans it gives
  its loss there, interpolated linearly in log C between the two checkpoints around it;
- ``auto``: ``exact`` when the compute values repeat (at most one distinct value per three
  points), else ``bins``.

A budget whose lowest loss is at its smallest or largest N (the points do not surround the
minimum), or whose parabola opens downwards, would give a biased N_opt: it is flagged and
left out of the line. Intervals: the points are resampled with replacement within each
budget (``bootstrap`` times), every parabola and the line refitted; see
`fitting.analyses.loglines` for how the line's own scatter widens them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fitting.accounting import Accounting
from fitting.analyses.loglines import (
    allocation_frame,
    answer,
    final_points,
    log_bins,
    tokens_model,
)
from fitting.errors import FitError

GROUPINGS = ("auto", "exact", "bins", "checkpoints")
MIN_POINTS = 3  # a parabola needs three sizes


def isoflop(
    frame: pd.DataFrame,
    budgets: Sequence[float] | np.ndarray = (),
    *,
    accounting: Accounting | dict[str, str] | str | None = None,
    grouping: str = "auto",
    bin_width: float = 0.1,
    flop_values: Sequence[float] | None = None,
    per_decade: int = 4,
    bootstrap: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Approach 2 on a canonical frame; the answer also lists every budget's optimum."""
    t0 = time.perf_counter()
    if grouping not in GROUPINGS:
        raise FitError(f"grouping must be one of {', '.join(GROUPINGS)}, not {grouping!r}")
    acc = Accounting.coerce(accounting)
    rows = allocation_frame(frame, acc)
    fpt = tokens_model(rows, acc)
    points, used_grouping = _group(rows, grouping, bin_width, flop_values, per_decade, fpt)
    profiles = [_profile(g) for _, g in points.groupby("budget", sort=True)]
    good = [p for p in profiles if p["usable"]]
    few = [p for p in profiles if p["n_sizes"] < MIN_POINTS]
    flags = [
        f"budget C={p['flops']:.3g}: {p['flag']}"
        for p in profiles
        if p["flag"] and p["n_sizes"] >= MIN_POINTS
    ]
    if few:
        flags.append(
            f"{len(few)} budget(s) with fewer than {MIN_POINTS} sizes left out "
            f"({sum(p['n_points'] for p in few)} point(s))"
        )
    if len(good) < 2:
        raise FitError(
            "IsoFLOP needs two or more budgets with at least 3 sizes whose points surround "
            f"the minimum; got {len(good)} of {len(profiles)}"
            + (f" ({'; '.join(flags)})" if flags else "")
        )
    log_c = np.log([p["flops"] for p in good])
    log_n = np.log([p["N_opt"] for p in good])
    log_d = log_c - np.log(fpt(np.exp(log_n)))
    replicates = _bootstrap(points, good, fpt, int(bootstrap), seed)
    c = np.atleast_1d(np.asarray(budgets, dtype=float))
    out = answer(log_c, log_n, log_d, replicates, c, fpt, level, with_t=True)
    if out["bootstrap_used"] < 0.9 * max(int(bootstrap), 1) and bootstrap:
        flags.append(
            f"only {out['bootstrap_used']} of {bootstrap} resamples kept two budgets: "
            "the intervals rest on few resamples"
        )
    out.update(
        approach="isoflop",
        grouping=used_grouping,
        accounting=acc.to_dict(),
        accounting_text=acc.describe(),
        budgets=[_public(p) for p in profiles],
        n_points=len(points),
        flags=flags,
        duration_s=time.perf_counter() - t0,
    )
    return out


def _group(
    rows: pd.DataFrame,
    grouping: str,
    width: float,
    flop_values: Sequence[float] | None,
    per_decade: int,
    fpt: Any,
) -> tuple[pd.DataFrame, str]:
    """Points (run, N, C, loss) with a ``budget`` label, and the grouping used."""
    if grouping == "checkpoints":
        return _checkpoints(rows, flop_values, per_decade, fpt), grouping
    pts = final_points(rows)
    pts = pts.assign(N=pts["params"], C=pts["flops"])[["run", "N", "C", "loss"]]
    rounded = pts["C"].map(lambda v: float(f"{v:.6g}"))
    if grouping == "auto":
        grouping = "exact" if rounded.nunique() * 3 <= len(pts) else "bins"
    if grouping == "exact":
        label = rounded.to_numpy()
    else:
        label = log_bins(np.log(pts["C"].to_numpy()), width * np.log(10.0))
    return pts.assign(budget=label).reset_index(drop=True), grouping


def _checkpoints(
    rows: pd.DataFrame, flop_values: Sequence[float] | None, per_decade: int, fpt: Any
) -> pd.DataFrame:
    """Porian et al.'s IsoFLOP points: each run's loss interpolated at fixed C values."""
    curves = []
    for run, g in rows.groupby("run", sort=False):
        g = g.sort_values("flops")
        c, loss = g["flops"].to_numpy(), g["loss"].to_numpy()
        keep = np.r_[True, np.diff(c) > 0]
        if keep.sum() >= 2:
            curves.append((run, float(g["params"].iloc[-1]), np.log(c[keep]), loss[keep]))
    if not curves:
        raise FitError("checkpoint IsoFLOPs need runs with two or more checkpoints (curves)")
    if flop_values is None:
        lo = min(cv[2][0] for cv in curves) / np.log(10.0)
        hi = max(cv[2][-1] for cv in curves) / np.log(10.0)
        step = 1.0 / max(int(per_decade), 1)
        targets = 10.0 ** np.arange(np.ceil(lo / step) * step, hi + 1e-9, step)
    else:
        targets = np.asarray(flop_values, dtype=float)
    out = []
    for c in targets:
        lc = np.log(c)
        for run, n, log_c, loss in curves:
            if log_c[0] <= lc <= log_c[-1]:
                out.append((run, n, float(c), float(np.interp(lc, log_c, loss)), float(c)))
    return pd.DataFrame(out, columns=["run", "N", "C", "loss", "budget"])


def _vertex(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(curvature, vertex, value there) of the least-squares parabola in x."""
    centre = float(np.mean(x))
    p2, p1, p0 = np.polyfit(x - centre, y, 2)
    if p2 == 0:
        return 0.0, np.nan, np.nan
    v = -p1 / (2.0 * p2)
    return float(p2), float(v + centre), float(p0 + p1 * v + p2 * v * v)


def _profile(g: pd.DataFrame) -> dict[str, Any]:
    """One budget's parabola, its optimum and whether it can be trusted."""
    x, y = np.log(g["N"].to_numpy()), g["loss"].to_numpy()
    flops = float(np.exp(np.mean(np.log(g["C"].to_numpy()))))
    out: dict[str, Any] = {
        "budget": g["budget"].iloc[0],
        "flops": flops,
        "n_points": len(g),
        "n_sizes": int(np.unique(x).size),
        "N_min": float(np.exp(x.min())),
        "N_max": float(np.exp(x.max())),
        "N_opt": np.nan,
        "loss_at_opt": np.nan,
        "usable": False,
        "flag": "",
    }
    if np.unique(x).size < MIN_POINTS:
        out["flag"] = f"{np.unique(x).size} size(s): a parabola needs {MIN_POINTS}"
        return out
    curvature, vertex, at_vertex = _vertex(x, y)
    best = float(np.mean(x[y == y.min()]))  # ties (digitised losses repeat): their middle
    surrounded = (x < best).any() and (x > best).any()
    if curvature <= 0:
        out["flag"] = "the parabola opens downwards (no minimum)"
    elif not surrounded or not x.min() < vertex < x.max():
        side = "smallest" if best <= x.min() or vertex <= x.min() else "largest"
        out["flag"] = f"the points do not surround the minimum (lowest loss at the {side} N)"
    if curvature > 0:
        out["N_opt"], out["loss_at_opt"] = float(np.exp(vertex)), at_vertex
    out["usable"] = not out["flag"]
    return out


def _bootstrap(
    points: pd.DataFrame, good: list[dict[str, Any]], fpt: Any, n_boot: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Resample points within each usable budget; refit the parabolas (vectorised)."""
    if n_boot <= 0:
        return []
    rng = np.random.default_rng(seed)
    vertices = np.full((n_boot, len(good)), np.nan)
    for j, p in enumerate(good):
        g = points[points["budget"] == p["budget"]]
        x, y = np.log(g["N"].to_numpy()), g["loss"].to_numpy()
        centre = float(np.mean(x))  # centred log N keeps the normal equations well posed
        x = x - centre
        idx = rng.integers(0, x.size, size=(n_boot, x.size))
        xs, ys = x[idx], y[idx]
        design = np.stack([xs**2, xs, np.ones_like(xs)], axis=2)  # (B, m, 3)
        gram = np.einsum("bmi,bmj->bij", design, design)
        rhs = np.einsum("bmi,bm->bi", design, ys)
        distinct = np.array([np.unique(row).size for row in xs]) >= MIN_POINTS
        gram[~distinct] = np.eye(3)  # placeholder; the resample is dropped below
        coef = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            vertex = -coef[:, 1] / (2.0 * coef[:, 0])
        ok = distinct & (coef[:, 0] > 0) & (vertex > x.min()) & (vertex < x.max())
        vertices[ok, j] = vertex[ok] + centre
    log_c_all = np.log([p["flops"] for p in good])
    out = []
    for row in vertices:
        keep = np.isfinite(row)
        log_n = row[keep]
        log_c = log_c_all[keep]
        out.append((log_c, log_n, log_c - np.log(fpt(np.exp(log_n)))))
    return out


def _public(p: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in p.items() if k != "budget"}
