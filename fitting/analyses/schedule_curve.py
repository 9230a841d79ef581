"""The predicted loss curve of a new LR schedule, from a fitted loss-curve law.

``schedule_curve(result, spec)`` answers "what will the loss curve look like under another
LR schedule?": a law that takes a schedule (``Law.takes_schedule``) fitted on a few curves
is evaluated on the exact per-step LR of ``spec``, with the fit's options (warmup
conventions, momentum decay) so the new curve is computed the same way as the fitted ones.
The band is the fit's own (bootstrap percentiles or the delta method on the curvature).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fitting.analyses.common import law_for
from fitting.errors import FitError
from fitting.result import FitResult
from fitting.schedules import ScheduleSpec
from store.errors import BadInputError

RUN = "(new schedule)"  # a run name no fitted run is expected to have
DEFAULT_POINTS = 1000


def schedule_curve(
    result: FitResult,
    spec: ScheduleSpec | str | Mapping[str, Any],
    steps: np.ndarray | list[int] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Columns ``step, lr, loss, lo, hi, pred_lo, pred_hi``: the predicted loss at each step
    under ``spec``, its confidence band (``lo``, ``hi``: the law) and its prediction band
    (``pred_lo``, ``pred_hi``: a new run's observed loss, between-run error included).

    ``steps`` defaults to about 1,000 steps from the end of the warmup to
    ``spec.total_steps`` plus the steps where the schedule changes regime (start of the
    decay, milestones), so sudden drops show up sharply. ``lo``/``hi`` bound the prediction at ``level``; they are
    infinite where a parameter the prediction depends on has no finite standard error."""
    law_for(result, "schedule_curve")
    try:
        schedule = ScheduleSpec.coerce(spec)
    except BadInputError as err:
        raise FitError(err.message, column="schedule") from None
    at = default_steps(schedule) if steps is None else checked_steps(steps)
    frame = pd.DataFrame(
        {"run": RUN, "step": at, "lr": schedule.lr(at), "schedule": schedule.to_json()}
    )
    loss = result.predict(frame)
    bands = result.bands(frame, level=level)
    (lo, hi), (p_lo, p_hi) = bands["confidence"], bands["prediction"]
    return pd.DataFrame(
        {
            "step": at,
            "lr": frame["lr"].to_numpy(),
            "loss": loss,
            "lo": lo,
            "hi": hi,
            "pred_lo": p_lo,
            "pred_hi": p_hi,
        }
    )


def default_steps(spec: ScheduleSpec, n: int = DEFAULT_POINTS) -> np.ndarray:
    """An even grid from the end of the warmup (the laws describe the loss after it; at
    S1 -> 0 they diverge) to ``total_steps``, plus each regime change and its neighbours."""
    total, first = spec.total_steps, max(1, spec.warmup_steps)
    grid = np.linspace(first, total, n).round()
    changes = [spec.warmup_steps, *spec.milestones]
    if spec.kind == "wsd":
        changes.append(total - spec.decay_steps)
    near = [s + d for s in changes for d in (-1, 0, 1)]
    steps = np.unique(np.r_[grid, near]).astype(np.int64)
    return steps[(steps >= first) & (steps <= total)]


def checked_steps(steps: np.ndarray | list[int]) -> np.ndarray:
    """Sorted unique whole steps >= 0, or FitError naming the bad value."""
    raw = np.atleast_1d(np.asarray(steps, dtype=float))
    if raw.size == 0:
        raise FitError("steps is empty; give at least one step")
    bad = ~np.isfinite(raw) | (raw < 0) | (raw != np.round(raw))
    if bad.any():
        raise FitError(f"steps must be whole numbers >= 0; got {raw[bad][0]!r}", column="step")
    return np.unique(raw.astype(np.int64))
