"""LR-annealing law (Tissue et al. 2024): L(s) = L0 + A * S1(s)^-alpha - C * S2(s).

S1 is the area under the LR curve up to step s, S2 the annealing area with momentum
(m_i = lam * m_{i-1} + eta_{i-1} - eta_i, lam = 0.999 by default); both come from the
run's LR at every step (``fitting.curves``), so a frame with a loss every k steps and the
LR (or the schedule) of every step is normal input. Fitted on one or two curves, it
predicts the loss curve of other schedules (``fitting.analyses.schedule_curve``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fitting.curves import area, curve_rows, momentum_area, synthetic_curves
from fitting.errors import FitError
from fitting.laws.base import Law, Parameter, Prepared
from fitting.schedules import ScheduleSpec


def resolve_curve_options(options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Options of a curve law, completed with defaults; schedules stored as text."""
    out = {**defaults, **options}
    unknown = set(out) - set(defaults) - {"schedules"}
    if unknown:
        raise FitError(
            f"unknown option(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(sorted([*defaults, 'schedules']))}"
        )
    schedules = out.get("schedules") or {}
    if not isinstance(schedules, dict):
        raise FitError("option schedules must map run names to schedule specs")
    out["schedules"] = {str(r): str(ScheduleSpec.coerce(s)) for r, s in schedules.items()}
    return out


def linear_start(y: np.ndarray, features: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Least-squares coefficients of y on [1, *features], and the residual sum of squares."""
    design = np.column_stack([np.ones_like(y), *features])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef, float(np.sum((design @ coef - y) ** 2))


class LrAnnealing(Law):
    """Loss as a function of the LR area and the annealing area (momentum form)."""

    name: ClassVar[str] = "lr_annealing"
    formula: ClassVar[str] = "L(s) = L0 + A * S1(s)^(-alpha) - C * S2(s)"
    description: ClassVar[str] = (
        "Tissue et al. 2024 LR-annealing law: S1 = sum of the per-step LR (warmup included "
        "unless include_warmup=False), S2 = annealing area with momentum decay lam "
        "(default 0.999). Needs per run: step, the LR at every step (lr column, a schedule "
        "spec, or a sparse lr column to interpolate) and loss."
    )
    inputs: ClassVar[tuple[str, ...]] = ("run", "step", "lr")
    kind: ClassVar[str] = "curves"
    defaults: ClassVar[dict[str, Any]] = {"include_warmup": True, "lam": 0.999}
    alphas: ClassVar[tuple[float, ...]] = (0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.4)

    def resolve(self, data: pd.DataFrame, **options: Any) -> dict[str, Any]:
        return resolve_curve_options(options, self.defaults)

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        return [
            Parameter("L0", 0.0, 50.0, doc="loss at infinite LR area"),
            Parameter("A", 1e-8, 1e4, log=True, doc="scale of the LR-area power term"),
            Parameter("alpha", 1e-3, 3.0, doc="exponent of the LR area"),
            Parameter("C", 0.0, 1e7, doc="loss drop per unit of annealing area S2"),
        ]

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        opts = self.resolve(data, **options)
        cur = curve_rows(data, self.name, for_fit, opts["schedules"])
        s1 = cur.per_row({r: area(lr, opts["include_warmup"]) for r, lr in cur.runs.items()})
        s2 = cur.per_row({r: momentum_area(lr, float(opts["lam"])) for r, lr in cur.runs.items()})
        notes = list(cur.notes)
        mask = cur.fit_mask & (s1 > 0)
        if (cur.fit_mask & ~mask).any():
            notes.append(
                f"{int((cur.fit_mask & ~mask).sum())} row(s) before any LR area are not fit points"
            )
        if for_fit and not mask.any():
            raise FitError("lr_annealing: no row with a loss has a positive LR area")
        positive = s1[s1 > 0]
        floor = float(positive.min()) if positive.size else 1.0
        log_s1 = np.log(np.maximum(s1, floor))  # rows at S1 = 0 are predicted at the floor
        extra = {"log_s1": log_s1, "s2": s2, "notes": notes}
        return Prepared(cur.y, mask, cur.groups, cur.steps.astype(float), extra)

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        l0, a, alpha, c = (np.atleast_2d(theta)[:, j, None] for j in range(4))
        return l0 + a * np.exp(-alpha * prep.extra["log_s1"]) - c * prep.extra["s2"]

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        theta = np.atleast_2d(theta)
        a, alpha = theta[:, 1, None], theta[:, 2, None]
        log_s1 = prep.extra["log_s1"]
        power = np.exp(-alpha * log_s1)
        out = np.empty((theta.shape[0], prep.n_rows, 4))
        out[:, :, 0] = 1.0
        out[:, :, 1] = power
        out[:, :, 2] = -a * power * log_s1
        out[:, :, 3] = -prep.extra["s2"]
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        # For a fixed alpha the law is linear in (L0, A, C): solve it by least squares.
        y = prep.y[prep.fit_mask]
        log_s1, s2 = prep.extra["log_s1"][prep.fit_mask], prep.extra["s2"][prep.fit_mask]
        rows = []
        for alpha in self.alphas:
            feats = [np.exp(-alpha * log_s1)] + ([-s2] if np.ptp(s2) > 0 else [])
            coef, _ = linear_start(y, feats)
            c = coef[2] if len(coef) > 2 else 0.0
            rows.append([coef[0], max(coef[1], 1e-6), alpha, max(c, 0.0)])
        return np.array(rows)

    def guess(self, prep: Prepared) -> np.ndarray:
        y = prep.y[prep.fit_mask]
        best, best_rss = None, np.inf
        for start in self.starts(prep):
            rss = float(np.sum((self.predict(start[None, :], prep)[0][prep.fit_mask] - y) ** 2))
            if rss < best_rss:
                best, best_rss = start, rss
        return np.asarray(best)

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        truth = {"L0": 2.8, "A": 0.5, "alpha": 0.5, "C": 0.4}
        frame = synthetic_curves(every=50)
        clean = self.predict(np.array([list(truth.values())]), self.prepare(frame, for_fit=False))
        frame["loss"] = clean[0] * np.exp(rng.normal(0.0, 5e-4, len(frame)))
        return truth, frame
