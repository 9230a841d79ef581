"""LR-annealing law (Tissue et al. 2024): L(s) = L0 + A * S1(s)^-alpha - C * S2(s).

S1 is the area under the LR curve up to step s, S2 the annealing area with momentum
(m_i = lam * m_{i-1} + eta_{i-1} - eta_i, lam = 0.999 by default); both come from the
run's LR at every step (``fitting.laws.curve_support``), so a frame with a loss every k
steps and the LR (or the schedule) of every step is normal input. Fitted on one or two curves, it
predicts the loss curve of other schedules (``fitting.analyses.schedule_curve``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fitting.errors import FitError
from fitting.laws.base import Law, Parameter, Prepared
from fitting.laws.curve_support import area, curve_rows, momentum_area, synthetic_curves
from fitting.schedules import ScheduleSpec


def resolve_curve_options(
    options: dict[str, Any], defaults: dict[str, Any], data: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Options of a curve law, completed with defaults; schedules stored as text; the
    ``split`` to fit chosen when the frame mixes several (``train`` when present)."""
    options = dict(options)
    if "lambda" in options and "lam" in defaults:  # the paper's name (a Python keyword)
        options["lam"] = options.pop("lambda")
    out = {**defaults, "split": None, **options}
    known = {*defaults, "schedules", "split"}
    unknown = set(out) - known
    if unknown:
        raise FitError(
            f"unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    for key, default in defaults.items():
        out[key] = _typed(key, out[key], type(default))
    schedules = out.get("schedules") or {}
    if not isinstance(schedules, dict):
        raise FitError("option schedules must map run names to schedule specs")
    out["schedules"] = {str(r): str(ScheduleSpec.coerce(s)) for r, s in schedules.items()}
    if data is not None and "split" in data.columns and "loss" in data.columns:
        has_loss = pd.to_numeric(data["loss"], errors="coerce").notna()
        splits = sorted(data.loc[has_loss, "split"].dropna().astype(str).unique())
        if out["split"] is None and len(splits) > 1:
            out["split"] = "train" if "train" in splits else splits[0]
    return out


def _typed(key: str, value: Any, kind: type) -> Any:
    """An option value of the default's type (options may arrive as text from a job)."""
    text = str(value).strip().lower()
    if kind is bool and (isinstance(value, bool) or text in ("true", "false", "1", "0")):
        return text in ("true", "1")
    try:
        if kind is not bool:
            number = float(value)
            if math.isfinite(number) and (kind is float or number == round(number)):
                return kind(number)
    except (TypeError, ValueError):
        pass
    raise FitError(f"option {key} must be a {kind.__name__}, got {value!r}")


def local_minima(values: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to ``n`` local minima of a 1-D profile, lowest first."""
    left = np.r_[np.inf, values[:-1]]
    right = np.r_[values[1:], np.inf]
    idx = np.flatnonzero((values <= left) & (values <= right) & np.isfinite(values))
    if idx.size == 0:
        idx = np.array([int(np.nanargmin(values))]) if np.isfinite(values).any() else np.array([0])
    return idx[np.argsort(values[idx])][:n]


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
    irreducible: ClassVar[str | None] = "L0"
    sizes: ClassVar[tuple[str, ...]] = ("step",)
    takes_schedule: ClassVar[bool] = True
    analyses: ClassVar[frozenset[str]] = frozenset({"kl_decomposition", "schedule_curve"})
    defaults: ClassVar[dict[str, Any]] = {"include_warmup": True, "lam": 0.999}
    law_options: ClassVar[tuple[str, ...]] = (*defaults, "lambda", "schedules", "split")
    alphas: ClassVar[np.ndarray] = np.geomspace(0.02, 2.5, 48)

    def resolve(self, data: pd.DataFrame, **options: Any) -> dict[str, Any]:
        return resolve_curve_options(options, self.defaults, data)

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        return [
            Parameter("L0", 0.0, 50.0, doc="loss at infinite LR area"),
            Parameter("A", 1e-8, 1e4, log=True, doc="scale of the LR-area power term"),
            Parameter("alpha", 1e-3, 3.0, doc="exponent of the LR area"),
            Parameter("C", 0.0, 1e7, doc="loss drop per unit of annealing area S2"),
        ]

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        opts = self.resolve(data, **options)
        cur = curve_rows(data, self.name, for_fit, opts["schedules"], opts["split"])
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
        if for_fit and not s2[mask].any():
            notes.append("no run anneals its LR (S2 = 0): C is not determined; fix C=0")
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

    def profile_starts(self, prep: Prepared) -> np.ndarray:
        """Minima (best first, at most 4) of the least-squares profile over alpha: for a
        fixed alpha the law is linear in (L0, A, C), so each value is one small linear
        solve; each local minimum of a coarse grid is refined by a bounded 1-D search.
        Starts this close let the engine converge in a few iterations."""
        from scipy.optimize import minimize_scalar

        fit_rows = np.flatnonzero(prep.fit_mask)
        fit_rows = fit_rows[:: max(1, fit_rows.size // 5000)]  # starts need no more
        y, log_s1 = prep.y[fit_rows], prep.extra["log_s1"][fit_rows]
        s2 = prep.extra["s2"][fit_rows]

        def solve(alpha: float) -> tuple[list[float], float]:
            feats = [np.exp(-alpha * log_s1)] + ([-s2] if np.ptp(s2) > 0 else [])
            coef, err = linear_start(y, feats)
            c = coef[2] if len(coef) > 2 else 0.0
            return [max(coef[0], 0.0), max(coef[1], 1e-6), alpha, max(c, 0.0)], err

        grid = self.alphas
        rss = np.array([solve(a)[1] for a in grid])
        rows = []
        for i in local_minima(rss, 4):
            lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
            best = minimize_scalar(
                lambda a: solve(a)[1], bounds=(lo, hi), method="bounded", options={"xatol": 1e-5}
            )
            alpha = float(best.x) if best.fun <= rss[i] else float(grid[i])
            rows.append(solve(alpha))
        rows.sort(key=lambda r: r[1])
        return np.array([r[0] for r in rows])

    def starts(self, prep: Prepared) -> np.ndarray:
        # The engine always tries the guess (the best minimum): only the others here.
        return self.profile_starts(prep)[1:]

    def guess(self, prep: Prepared) -> np.ndarray:
        return self.profile_starts(prep)[0]

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        truth = {"L0": 2.8, "A": 0.5, "alpha": 0.5, "C": 0.4}
        frame = synthetic_curves(every=50)
        clean = self.predict(np.array([list(truth.values())]), self.prepare(frame, for_fit=False))
        frame["loss"] = clean[0] * np.exp(rng.normal(0.0, 5e-4, len(frame)))
        return truth, frame
