"""Multi-power law (Luo et al. 2025): the loss curve of any LR schedule.

    L(t)  = L0 + A * (S1(t) + S_W)^(-alpha) - LD(t)
    LD(t) = B * sum_{k=1..t} (eta_{k-1} - eta_k) * G(eta_k^(-gamma) * S_k(t))
    G(x)  = 1 - (C x + 1)^(-beta),   S_k(t) = sum_{tau=k..t} eta_tau

Conventions (those of the authors' code, which reproduce their published 25M metrics, see
tests/fitting/test_luo2025.py): S1(t) + S_W is the LR summed over every step 0..t, warmup
included (``include_warmup=False`` drops S_W); the sum in LD starts at k = 1, so the LR's
rise during the warmup enters as negative drops (``ld_warmup=False`` starts it after the
warmup). LD is evaluated with the binned sum of ``fitting.laws.curve_support.loss_drop_terms``
(error below 1e-4 of LD). When fitting, LD is computed at the fit points only and LR-only
rows get it by linear interpolation (they do not enter the objective); when predicting, a
run with more than ``max_eval`` distinct steps gets LD exactly at its rows with a loss and
on an even grid of steps, and linearly interpolated in between.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fitting import threads
from fitting.errors import FitError
from fitting.laws.base import Law, Parameter, Prepared, grid
from fitting.laws.curve_support import (
    CurveRows,
    LossDropTerms,
    RunLR,
    area,
    curve_rows,
    loss_drop_terms,
    synthetic_curves,
)
from fitting.laws.lr_annealing import linear_start, resolve_curve_options

_CHUNK_ELEMENTS = 4_000_000
_THREADED_TERMS = 50_000  # terms (all points) from which LD is computed on threads


class MultiPower(Law):
    """Loss curve from the LR area (power law) minus a multi-power loss drop."""

    name: ClassVar[str] = "multi_power"
    formula: ClassVar[str] = (
        "L(t) = L0 + A*(S1(t)+S_W)^(-alpha) - B*sum_k (eta_{k-1}-eta_k)*"
        "(1-(C*eta_k^(-gamma)*S_k(t)+1)^(-beta))"
    )
    description: ClassVar[str] = (
        "Luo et al. 2025 multi-power law: predicts the whole loss curve of an LR schedule. "
        "Needs per run: step, the LR at every step (lr column, a schedule spec, or a sparse "
        "lr column to interpolate) and loss."
    )
    inputs: ClassVar[tuple[str, ...]] = ("run", "step", "lr")
    kind: ClassVar[str] = "curves"
    irreducible: ClassVar[str | None] = "L0"
    sizes: ClassVar[tuple[str, ...]] = ("step",)
    takes_schedule: ClassVar[bool] = True
    analyses: ClassVar[frozenset[str]] = frozenset({"kl_decomposition", "schedule_curve"})
    defaults: ClassVar[dict[str, Any]] = {
        "include_warmup": True,
        "ld_warmup": True,
        "max_eval": 2000,
    }
    law_options: ClassVar[tuple[str, ...]] = (*defaults, "schedules", "split")

    n_starts: ClassVar[int] = 16  # the best of the 81-point grid after the linear solve

    def resolve(self, data: pd.DataFrame, **options: Any) -> dict[str, Any]:
        out = resolve_curve_options(options, self.defaults, data)
        if int(out["max_eval"]) < 2:
            raise FitError(f"multi_power: max_eval must be >= 2, got {out['max_eval']!r}")
        return out

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        return [
            Parameter("L0", 0.0, 50.0, doc="loss at infinite LR area"),
            Parameter("A", 1e-8, 1e4, log=True, doc="scale of the LR-area power term"),
            Parameter("alpha", 1e-3, 3.0, doc="exponent of the LR area"),
            Parameter("B", 1e-3, 1e9, log=True, doc="loss drop per unit of LR decrease"),
            Parameter("C", 1e-4, 1e6, log=True, doc="rate at which a drop takes effect"),
            Parameter("beta", 1e-3, 5.0, doc="power of the loss-drop saturation"),
            Parameter("gamma", 0.0, 3.0, doc="LR exponent in the drop's time scale"),
        ]

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        opts = self.resolve(data, **options)
        cur = curve_rows(data, self.name, for_fit, opts["schedules"], opts["split"])
        s1 = cur.per_row({r: area(lr, opts["include_warmup"]) for r, lr in cur.runs.items()})
        notes = list(cur.notes)
        mask = cur.fit_mask & (s1 > 0)
        if for_fit and not mask.any():
            raise FitError("multi_power: no row with a loss has a positive LR area")
        positive = s1[s1 > 0]
        log_s1 = np.log(np.maximum(s1, float(positive.min()) if positive.size else 1.0))
        if for_fit and not any(_decays(lr) for lr in cur.runs.values()):
            notes.append(
                "no run lowers its LR after the warmup: B, C, beta, gamma are poorly "
                "determined (fit on a decaying schedule too)"
            )
        terms, lo, hi, w_hi = _ld_layout(cur, mask, opts, notes, for_fit)
        extra = {"log_s1": log_s1, "terms": terms, "lo": lo, "hi": hi, "w_hi": w_hi}
        extra["notes"] = notes
        return Prepared(cur.y, mask, cur.groups, cur.steps.astype(float), extra)

    def _ld(
        self, theta: np.ndarray, prep: Prepared, grad: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """LD at every row (K, M), and its gradient (K, M, 4) when asked."""
        ex = prep.extra
        terms: LossDropTerms = ex["terms"]
        # Chunks of parameter sets keep the (K, terms) work arrays near 32 MB in all.
        per = max(1, _CHUNK_ELEMENTS // max(terms.weight.size, 1))
        pieces = _pieces(ex)
        parts = []
        for i in range(0, theta.shape[0], per):
            args = [theta[i : i + per, j] for j in range(3, 7)]
            done = threads.map_parts(functools.partial(_drop, args=args, grad=grad), pieces)
            parts.append(
                done[0]
                if len(done) == 1
                else (
                    np.concatenate([d[0] for d in done], axis=1),
                    np.concatenate([d[1] for d in done], axis=1) if grad else None,
                )
            )
        ld = np.concatenate([p[0] for p in parts])
        d = np.concatenate([p[1] for p in parts]) if grad else None
        w = ex["w_hi"]
        rows = ld[:, ex["lo"]] * (1.0 - w) + ld[:, ex["hi"]] * w
        if not grad:
            return rows, None
        w3 = w[None, :, None]
        return rows, d[:, ex["lo"], :] * (1.0 - w3) + d[:, ex["hi"], :] * w3

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        l0, a, alpha = (theta[:, j, None] for j in range(3))
        ld, _ = self._ld(theta, prep, grad=False)
        return l0 + a * np.exp(-alpha * prep.extra["log_s1"]) - ld

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        a, alpha = theta[:, 1, None], theta[:, 2, None]
        log_s1 = prep.extra["log_s1"]
        power = np.exp(-alpha * log_s1)
        _, d_ld = self._ld(theta, prep, grad=True)
        out = np.empty((theta.shape[0], prep.n_rows, 7))
        out[:, :, 0] = 1.0
        out[:, :, 1] = power
        out[:, :, 2] = -a * power * log_s1
        out[:, :, 3:] = -d_ld
        return out

    def grid_starts(self, prep: Prepared) -> np.ndarray:
        # For fixed (alpha, C, beta, gamma) the law is linear in (L0, A, B): least squares.
        shape = grid([0.3, 0.5, 0.8], [0.5, 2.0, 8.0], [0.3, 0.6, 1.0], [0.3, 0.6, 0.9])
        m = prep.fit_mask
        y = prep.y[m]
        probe = np.column_stack(
            [
                np.zeros(len(shape)),
                np.zeros(len(shape)),
                shape[:, 0],
                np.ones(len(shape)),
                shape[:, 1:],
            ]
        )
        unit_ld, _ = self._ld(probe, prep, grad=False)
        rows = []
        for i, (alpha, c, beta, gamma) in enumerate(shape):
            coef, rss = linear_start(y, [np.exp(-alpha * prep.extra["log_s1"][m]), -unit_ld[i, m]])
            b = coef[2] if np.ptp(unit_ld[i, m]) > 0 else 1.0
            rows.append((rss, [coef[0], max(coef[1], 1e-6), alpha, max(b, 1e-2), c, beta, gamma]))
        rows.sort(key=lambda r: r[0])
        return np.array([r[1] for r in rows[: self.n_starts]])

    def starts(self, prep: Prepared) -> np.ndarray:
        # The engine always tries the guess (the best grid point): only the others here.
        return self.grid_starts(prep)[1:]

    def guess(self, prep: Prepared) -> np.ndarray:
        return self.grid_starts(prep)[0]

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        truth = {"L0": 3.0, "A": 0.5, "alpha": 0.5, "B": 400.0, "C": 2.0, "beta": 0.6, "gamma": 0.6}
        frame = synthetic_curves(every=50)
        clean = self.predict(np.array([list(truth.values())]), self.prepare(frame, for_fit=False))
        frame["loss"] = clean[0] * np.exp(rng.normal(0.0, 5e-4, len(frame)))
        return truth, frame


def _decays(run: RunLR) -> bool:
    """Whether the LR goes down anywhere after the warmup."""
    return bool(np.any(np.diff(run.lr[run.warmup_steps :]) < 0))


def _drop(
    piece: LossDropTerms, *, args: list[np.ndarray], grad: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    return piece.drop(*args, grad=grad)


def _pieces(extra: dict[str, Any]) -> list[LossDropTerms]:
    """The loss-drop terms in parts over the evaluation points, one per thread (a small
    fit keeps one: the threads' overhead would outweigh its work)."""
    terms: LossDropTerms = extra["terms"]
    return terms.split(threads.count() if terms.weight.size >= _THREADED_TERMS else 1)


def _ld_layout(
    cur: CurveRows, mask: np.ndarray, opts: dict[str, Any], notes: list[str], for_fit: bool
) -> tuple[LossDropTerms, np.ndarray, np.ndarray, np.ndarray]:
    """LD terms at each run's evaluation steps, and per row the two evaluation points
    (and the weight of the second) that give its LD by linear interpolation."""
    parts, lo, hi = [], np.zeros(len(cur.steps), np.int64), np.zeros(len(cur.steps), np.int64)
    w_hi, offset, max_eval = np.zeros(len(cur.steps)), 0, int(opts["max_eval"])
    for run, lr in cur.runs.items():
        rows = cur.rows_of(run)
        steps = np.unique(cur.steps[rows])
        fit_steps = np.unique(cur.steps[rows[mask[rows]]])
        if for_fit and fit_steps.size:
            # Fitting only needs LD at the fit points; LR-only rows get it interpolated.
            steps = fit_steps
        elif steps.size > max_eval:
            pick = np.unique(np.linspace(0, steps.size - 1, max_eval).round().astype(int))
            steps = np.union1d(steps[pick], fit_steps)
            notes.append(f"run {run!r}: loss drop interpolated between {steps.size} steps")
        parts.append(loss_drop_terms(lr, steps, include_warmup=bool(opts["ld_warmup"])))
        pos = cur.steps[rows]
        if steps.size > 1:  # steps are unique, so right > left
            k = np.clip(np.searchsorted(steps, pos), 1, steps.size - 1)
            left, right = steps[k - 1], steps[k]
            lo[rows], hi[rows] = offset + k - 1, offset + k
            w_hi[rows] = np.clip((pos - left) / (right - left), 0.0, 1.0)
        else:
            lo[rows] = hi[rows] = offset
        offset += steps.size
    return LossDropTerms.concat(parts), lo, hi, w_hi
