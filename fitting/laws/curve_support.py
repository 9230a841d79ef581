"""Per-step learning rate of each run, and the LR sums the loss-curve laws are built on.

The two curve laws (``lr_annealing``, ``multi_power``) need the LR at *every* optimizer step
of a run, although a frame usually holds a loss only every k steps. ``run_lrs`` rebuilds it,
per run, from (in this order):

1. a dense ``lr`` column (a finite LR at every step from 0 or 1 to the run's last step);
2. a schedule spec: ``schedules[run]`` from the options, else the run's ``schedule`` column
   (the JSON text the store records, or the text form of ``ScheduleSpec``);
3. linear interpolation of a sparse ``lr`` column (with a note; before the first logged
   step the LR is taken to rise linearly from 0 at step 0, as a warmup would).

The sums (dense arrays, one entry per step from the run's first step):

- ``area``: S1(t) = sum_{i<=t} eta_i, inclusive of step t; the warmup counts unless
  ``include_warmup=False`` (then S1 starts after the warmup and S_W = 0).
- ``momentum_area``: S2(t) = sum_{i<=t} m_i, m_i = lam * m_{i-1} + (eta_{i-1} - eta_i),
  summed over the steps after the warmup only (the warmup's rise is not annealing).
- ``LossDropTerms``: the multi-power loss drop
  LD(t) = B * sum_{k<=t} (eta_{k-1} - eta_k) * G(eta_k^-gamma * S_k(t)), with
  S_k(t) = sum_{tau=k..t} eta_tau = S1(t) - S1(k-1). Only steps where the LR changes
  contribute. Steps k within ``n_exact`` of t count one by one; farther ones are merged
  into bins whose width grows geometrically with the distance to t (by ``ratio``) and
  which also break wherever log eta has moved by ``log_tol`` or the warmup ends. Each bin
  counts as its total LR drop at its |drop|-weighted mean log eta_k and S1(k-1), all from
  prefix sums. This turns O(T) terms per point into ~150-400, with an error below 1e-4
  of LD (tests/fitting/test_curve_laws.py checks it against the exact double sum).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fitting.errors import FitError
from fitting.schedules import ScheduleSpec
from store.errors import BadInputError

_LR_FLOOR = 1e-30  # keeps log(eta) finite where a schedule reaches LR 0


@dataclass(frozen=True)
class RunLR:
    """The dense per-step LR of one run: ``lr[i]`` is the LR at step ``first_step + i``."""

    run: str
    first_step: int
    lr: np.ndarray
    warmup_steps: int  # leading entries of ``lr`` that are warmup
    source: str  # "dense", "schedule" or "interpolated"

    @property
    def last_step(self) -> int:
        return self.first_step + len(self.lr) - 1

    def index(self, steps: np.ndarray) -> np.ndarray:
        """Positions of ``steps`` in ``lr``."""
        return np.asarray(steps, dtype=np.int64) - self.first_step


def run_steps(data: pd.DataFrame) -> np.ndarray:
    """The ``step`` column as int64, which must hold whole numbers >= 0."""
    if "step" not in data.columns:
        raise FitError("curve laws need a 'step' column", column="step")
    raw = pd.to_numeric(data["step"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(raw) | (raw < 0) | (raw != np.round(raw))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise FitError(
            f"step must be a whole number >= 0 on every row ({int(bad.sum())} bad, "
            f"first at row {row}: {data['step'].iloc[row]!r})",
            line=row,
            column="step",
        )
    return raw.astype(np.int64)


def run_lrs(
    data: pd.DataFrame, schedules: Mapping[str, Any] | None = None
) -> tuple[dict[str, RunLR], list[str]]:
    """The dense LR of every run in ``data`` (column ``run``; one run when absent)."""
    steps = run_steps(data)
    runs = data["run"].astype(str).to_numpy() if "run" in data.columns else np.full(len(data), "")
    lr = _float_column(data, "lr")
    spec_col = data["schedule"].to_numpy() if "schedule" in data.columns else None
    schedules = dict(schedules or {})
    out: dict[str, RunLR] = {}
    notes: list[str] = []
    for run in pd.unique(runs):
        rows = np.flatnonzero(runs == run)
        spec = schedules.get(run)
        if spec is None and spec_col is not None:
            spec = next((v for v in spec_col[rows] if _is_spec(v)), None)
        out[run] = _one_run(str(run), steps[rows], lr[rows], spec, notes)
    return out, notes


def _is_spec(value: Any) -> bool:
    """A non-empty schedule cell: text (spec or JSON) or a dict (in-memory frames)."""
    return (isinstance(value, str) and bool(value.strip())) or isinstance(value, Mapping)


def _float_column(data: pd.DataFrame, column: str) -> np.ndarray:
    if column not in data.columns:
        return np.full(len(data), np.nan)
    return pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _one_run(run: str, steps: np.ndarray, lr: np.ndarray, spec: Any, notes: list[str]) -> RunLR:
    last = int(steps.max())
    known = np.isfinite(lr)
    if (lr[known] < 0).any():
        raise FitError(f"run {run!r}: lr must be >= 0", column="lr")
    k_steps, first = np.unique(steps[known], return_index=True)
    k_lr = lr[known][first]
    if k_steps.size and k_steps[0] <= 1 and k_steps.size == last - k_steps[0] + 1:
        return RunLR(run, int(k_steps[0]), k_lr, _detect_warmup(k_lr), "dense")
    if spec is not None:
        try:
            sched = ScheduleSpec.coerce(spec)
        except BadInputError as err:
            raise FitError(f"run {run!r}: {err.message}", column="schedule") from None
        return RunLR(run, 0, sched.dense(last), sched.warmup_steps, "schedule")
    if not k_steps.size:
        raise FitError(
            f"run {run!r}: the LR is unknown; give an 'lr' column, a 'schedule' column, "
            "or options schedules={run: spec}",
            column="lr",
        )
    if k_steps[0] > 0:
        k_steps, k_lr = np.r_[0, k_steps], np.r_[0.0, k_lr]
    dense = np.interp(np.arange(0, last + 1), k_steps, k_lr)
    notes.append(
        f"run {run!r}: LR known at {int(known.sum())} of {last + 1} steps; "
        "interpolated linearly (pass its schedule for the exact LR)"
    )
    return RunLR(run, 0, dense, _detect_warmup(dense), "interpolated")


def _detect_warmup(lr: np.ndarray) -> int:
    """Length of the leading rise to the peak LR (0 when the run starts at its peak)."""
    if lr.size < 2:
        return 0
    peak_at = int(np.argmax(lr >= lr.max() * (1 - 1e-12)))
    if peak_at == 0 or np.any(np.diff(lr[: peak_at + 1]) < 0):
        return 0
    return peak_at


def area(run: RunLR, include_warmup: bool = True) -> np.ndarray:
    """S1 at every step (inclusive), with or without the warmup's LR area."""
    eta = run.lr
    if not include_warmup and run.warmup_steps:
        eta = eta.copy()
        eta[: run.warmup_steps] = 0.0
    return np.cumsum(eta)


def momentum_area(run: RunLR, lam: float = 0.999) -> np.ndarray:
    """S2 at every step: the cumulative momentum of LR decreases after the warmup."""
    if not 0.0 <= lam < 1.0:
        raise FitError(f"lam (S2 momentum decay) must be in [0, 1), got {lam!r}")
    drop = np.zeros_like(run.lr)
    start = run.warmup_steps + 1  # drops between two post-warmup steps only
    drop[start:] = run.lr[start - 1 : -1] - run.lr[start:]
    from scipy.signal import lfilter  # lazy: scipy.signal costs ~1 s to import

    return np.cumsum(lfilter([1.0], [1.0, -lam], drop))


@dataclass(frozen=True)
class LossDropTerms:
    """Binned terms of LD at a set of evaluation steps (see the module docstring).

    Flat arrays over terms, sorted by evaluation point; ``offsets[j]`` is the first term of
    point j (every point has at least one term, possibly of weight 0)."""

    weight: np.ndarray  # sum of (eta_{k-1} - eta_k) over the bin
    log_eta: np.ndarray  # mean log eta_k over the bin
    log_span: np.ndarray  # log S_k(t) at the bin's representative k
    offsets: np.ndarray
    # The engine asks for predict then gradient at the same parameters: keep the last
    # elementwise arrays (x, log u, w u^-beta) so the gradient skips the transcendentals.
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _parts: dict[int, list[LossDropTerms]] = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        # Sent to bootstrap workers without the caches (tens of MB of work arrays).
        return {k: v for k, v in self.__dict__.items() if k not in ("_memo", "_parts")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _memo={}, _parts={})

    def _core(self, c: np.ndarray, beta: np.ndarray, gamma: np.ndarray) -> tuple[np.ndarray, ...]:
        key = b"".join(v.tobytes() for v in (c, beta, gamma))
        if self._memo.get("key") == key:
            return self._memo["core"]
        x = self.log_eta[None, :] * -gamma
        x += self.log_span[None, :]
        np.exp(x, out=x)  # eta_k^-gamma * S_k(t)
        log_u = np.multiply(c, x)
        np.log1p(log_u, out=log_u)  # log(1 + C x)
        wu = np.multiply(-beta, log_u)
        np.exp(wu, out=wu)
        wu *= self.weight[None, :]  # w * (1 + C x)^-beta
        core = (x, log_u, wu)
        if x.size <= 4_000_000:  # bounded memory
            self._memo.update(key=key, core=core)
        return core

    def drop(
        self,
        b: np.ndarray,
        c: np.ndarray,
        beta: np.ndarray,
        gamma: np.ndarray,
        grad: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """LD (K, J) for K parameter sets; with ``grad`` also d LD / d (B, C, beta, gamma)
        as a (K, J, 4) array."""
        b, c, beta, gamma = (np.asarray(v, dtype=float).reshape(-1, 1) for v in (b, c, beta, gamma))
        x, log_u, wu = self._core(c, beta, gamma)
        # sum w G = sum w - sum w u^-beta
        unit = np.add.reduceat(self.weight, self.offsets)[None, :] - np.add.reduceat(
            wu, self.offsets, axis=1
        )
        if not grad:
            return b * unit, None
        d_beta = np.add.reduceat(wu * log_u, self.offsets, axis=1)
        wdx = wu * x
        wdx *= beta / (1.0 + c * x)  # w * x * dG/du
        d_c = np.add.reduceat(wdx, self.offsets, axis=1)
        wdx *= self.log_eta[None, :]
        d_gamma = np.add.reduceat(wdx, self.offsets, axis=1)
        return b * unit, np.stack([unit, b * d_c, b * d_beta, -b * c * d_gamma], axis=-1)

    def split(self, n: int) -> list[LossDropTerms]:
        """At most ``n`` parts over consecutive evaluation points with about equal numbers
        of terms (for threads: each part's LD is its points' columns)."""
        points = self.offsets.size
        n = max(1, min(int(n), points))
        if n == 1:
            return [self]
        if n in self._parts:
            return self._parts[n]
        # The first point of each part: where the term count crosses k/n of the total.
        cuts = np.searchsorted(self.offsets, np.arange(1, n) * self.weight.size / n)
        bounds = np.unique(np.r_[0, np.clip(cuts, 1, points - 1), points])
        out = []
        for a, b in itertools.pairwise(bounds):
            t0 = int(self.offsets[a])
            t1 = int(self.offsets[b]) if b < points else self.weight.size
            out.append(
                LossDropTerms(
                    self.weight[t0:t1],
                    self.log_eta[t0:t1],
                    self.log_span[t0:t1],
                    self.offsets[a:b] - t0,
                )
            )
        self._parts[n] = out
        return out

    @classmethod
    def concat(cls, parts: list[LossDropTerms]) -> LossDropTerms:
        """Terms of several runs side by side (evaluation points in order)."""
        sizes = np.cumsum([0] + [p.weight.size for p in parts[:-1]])
        return cls(
            np.concatenate([p.weight for p in parts]),
            np.concatenate([p.log_eta for p in parts]),
            np.concatenate([p.log_span for p in parts]),
            np.concatenate([p.offsets + n for p, n in zip(parts, sizes, strict=True)]),
        )


def loss_drop_terms(
    run: RunLR,
    steps: np.ndarray,
    *,
    include_warmup: bool = True,
    n_exact: int = 16,
    ratio: float = 1.1,
    log_tol: float = 0.05,
) -> LossDropTerms:
    """Binned LD terms of ``run`` at ``steps`` (the LR changes of the warmup count as
    negative drops when ``include_warmup``, as in Luo et al.'s code)."""
    eta = np.maximum(run.lr, _LR_FLOOR)
    drop = np.zeros_like(eta)
    drop[1:] = run.lr[:-1] - run.lr[1:]
    if not include_warmup:
        drop[: run.warmup_steps + 1] = 0.0
    absd = np.abs(drop)
    s1 = np.cumsum(run.lr)
    # Prefix sums over k (index 0 = empty prefix), so any bin (lo, hi] is a difference.
    pre = {
        "w": np.r_[0.0, np.cumsum(drop)],
        "a": np.r_[0.0, np.cumsum(absd)],
        "le": np.r_[0.0, np.cumsum(absd * np.log(eta))],
        "s": np.r_[0.0, np.cumsum(absd * np.r_[0.0, s1[:-1]])],
        "s1": s1,
    }
    pos = run.index(steps)
    dist = _distance_edges(int(pos.max()) if pos.size else 0, n_exact, ratio)
    breaks = _lr_breaks(eta, run.warmup_steps, log_tol)
    per = max(1, 2_000_000 // (dist.size + breaks.size))  # bounded work arrays
    parts = [_bin(pre, pos[i : i + per], dist, breaks) for i in range(0, pos.size, per)]
    return LossDropTerms.concat(parts) if len(parts) != 1 else parts[0]


def _bin(
    pre: dict[str, np.ndarray], pos: np.ndarray, dist: np.ndarray, breaks: np.ndarray
) -> LossDropTerms:
    """The binned terms of the points at dense positions ``pos``."""
    # Bin edges of point t (prefix indexing: bin (lo, hi] holds k = lo .. hi - 1): the
    # distances t - dist from t, plus global breaks where log eta has moved by
    # ``log_tol`` or the warmup ends, so no bin mixes very different LRs or signs.
    edges = np.concatenate(
        [pos[:, None] - dist[None, :] + 1, np.broadcast_to(breaks, (pos.size, breaks.size))],
        axis=1,
    )
    edges = np.sort(np.clip(edges, 1, pos[:, None] + 1), axis=1)
    lo, hi = edges[:, :-1], edges[:, 1:]
    mass = pre["a"][hi] - pre["a"][lo]
    keep = mass > 0
    # Every point keeps one term (weight 0 when nothing contributes) so reduceat is safe.
    keep[:, 0] |= ~keep.any(axis=1)
    rows, cols = np.nonzero(keep)
    lo_k, hi_k, m = lo[rows, cols], hi[rows, cols], mass[rows, cols]
    safe = np.where(m > 0, m, 1.0)
    weight = np.where(m > 0, pre["w"][hi_k] - pre["w"][lo_k], 0.0)
    log_eta = np.where(m > 0, (pre["le"][hi_k] - pre["le"][lo_k]) / safe, 0.0)
    mean_prev = np.where(m > 0, (pre["s"][hi_k] - pre["s"][lo_k]) / safe, 0.0)
    span = pre["s1"][pos[rows]] - mean_prev
    log_span = np.log(np.maximum(span, _LR_FLOOR))
    offsets = np.searchsorted(rows, np.arange(pos.size))
    return LossDropTerms(weight, log_eta, log_span, offsets)


def _lr_breaks(eta: np.ndarray, warmup_steps: int, log_tol: float) -> np.ndarray:
    """Prefix indices where the cumulative |change of log eta| crosses a multiple of
    ``log_tol`` (at most ~1,000 of them), plus the end of the warmup."""
    # Offset so that the tiny LRs early in a warmup (where G is ~1 anyway) share bins.
    moved = np.r_[0.0, np.cumsum(np.abs(np.diff(np.log(eta + 0.05 * eta.max()))))]
    tol = max(log_tol, float(moved[-1]) / 1000.0)
    level = np.floor(moved / tol)
    ks = np.flatnonzero(np.diff(level) != 0) + 1  # first k of each new level
    return np.unique(np.r_[ks, warmup_steps + 1]).astype(np.int64)


def _distance_edges(max_pos: int, n_exact: int, ratio: float) -> np.ndarray:
    """Distances 0, 1, ..., n_exact, then growing by ``ratio``, past ``max_pos``."""
    edges = list(range(n_exact + 1))
    d = float(n_exact)
    while edges[-1] <= max_pos:
        d *= ratio
        edges.append(max(round(d), edges[-1] + 1))
    return np.asarray(edges, dtype=np.int64)


def exact_loss_drop(
    run: RunLR,
    steps: np.ndarray,
    b: float,
    c: float,
    beta: float,
    gamma: float,
    include_warmup: bool = True,
) -> np.ndarray:
    """The unbinned double sum (O(T) per point): the reference for tests and benches."""
    s1 = np.cumsum(run.lr)
    eta = np.maximum(run.lr, _LR_FLOOR)
    start = 1 if include_warmup else run.warmup_steps + 1
    out = np.zeros(len(steps))
    for j, t in enumerate(run.index(steps)):
        k = np.arange(start, t + 1)
        if k.size == 0:
            continue
        span = s1[t] - s1[k - 1]
        g = 1.0 - (1.0 + c * eta[k] ** (-gamma) * span) ** (-beta)
        out[j] = b * np.sum((run.lr[k - 1] - run.lr[k]) * g)
    return out


@dataclass(frozen=True)
class CurveRows:
    """A curve frame resolved for the curve laws: per-row arrays and each run's dense LR."""

    y: np.ndarray
    fit_mask: np.ndarray
    groups: np.ndarray  # run name per row
    steps: np.ndarray
    runs: dict[str, RunLR]
    notes: list[str]

    def rows_of(self, run: str) -> np.ndarray:
        return np.flatnonzero(self.groups == run)

    def per_row(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """Pick, for each row, its run's dense array at the row's step."""
        out = np.empty(len(self.steps))
        for run, values in arrays.items():
            rows = self.rows_of(run)
            out[rows] = values[self.runs[run].index(self.steps[rows])]
        return out


def curve_rows(
    data: pd.DataFrame,
    law: str,
    for_fit: bool,
    schedules: Mapping[str, Any] | None = None,
    split: str | None = None,
) -> CurveRows:
    """Validate a per-run curve frame (``run``, ``step``, ``lr`` and/or schedule, ``loss``).

    Rows without a loss are kept (they carry the LR and get predictions) but are not fit
    points; with ``split``, neither are the rows of other splits."""
    if len(data) == 0:
        raise FitError(f"law {law!r}: the data has no rows")
    steps = run_steps(data)
    runs, lr_notes = run_lrs(data, schedules)
    groups = data["run"].astype(str).to_numpy() if "run" in data.columns else np.full(len(data), "")
    if "loss" in data.columns:
        y = pd.to_numeric(data["loss"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    elif for_fit:
        raise FitError(f"law {law!r} needs a 'loss' column to fit", column="loss")
    else:
        y = np.full(len(data), np.nan)
    mask = np.isfinite(y)
    notes: list[str] = list(lr_notes)
    if split is not None and "split" in data.columns:
        other = mask & (data["split"].astype(str).to_numpy() != split)
        if other.any():
            notes.append(
                f"fit on split {split!r}; {int(other.sum())} loss(es) of other splits "
                "are not fit points"
            )
        mask &= ~other
    if for_fit and (y[mask] <= 0).any():
        row = int(np.flatnonzero(mask & (y <= 0))[0])
        raise FitError(f"law {law!r}: loss must be > 0 (row {row})", line=row, column="loss")
    if for_fit and not mask.any():
        which = f" of split {split!r}" if split is not None and "split" in data.columns else ""
        raise FitError(f"law {law!r}: no row{which} has a loss to fit", column="loss")
    return CurveRows(y, mask, groups, steps, runs, notes)


def synthetic_curves(every: int = 50) -> pd.DataFrame:
    """Three runs (constant, cosine, WSD) with a 300-step warmup to 3e-4 and 8,000 steps;
    rows every ``every`` steps carry the schedule as JSON (as the store records it)."""
    specs = {
        "constant": "constant:peak=3e-4,warmup=300,total=8000",
        "cosine": "cosine:peak=3e-4,warmup=300,total=8000,final=3e-5",
        "wsd": "wsd:peak=3e-4,warmup=300,total=8000,final=3e-5,decay=2000,shape=linear",
    }
    parts = []
    for run, text in specs.items():
        spec = ScheduleSpec.parse(text)
        steps = np.arange(every, spec.total_steps + 1, every)
        parts.append(
            pd.DataFrame(
                {
                    "run": run,
                    "step": steps,
                    "lr": spec.lr(steps),
                    "schedule": spec.to_json(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)
