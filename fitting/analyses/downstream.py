"""From a target downstream error back to the model loss that reaches it (Gadre et al.
2024's loss-to-error link, a law listing ``loss_for_error``: its ``loss_at_error`` hook).

Paired with a loss law in N and D, the answer says how good a model's validation loss must
be (and so how big a model, how many tokens) for a downstream error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

import numpy as np

from fitting.analyses.common import interval, law_for, method_text, positive_array
from fitting.errors import FitError
from fitting.result import FitResult


class ErrorLink(Protocol):
    """What ``loss_for_error`` asks of a law that lists it."""

    def loss_at_error(self, p: Mapping[str, float], error: np.ndarray) -> np.ndarray: ...


def loss_for_error(
    result: FitResult, error: float | np.ndarray, level: float = 0.95
) -> dict[str, Any]:
    """The model loss whose predicted downstream error is ``error`` (each target must lie
    below the fitted ``eps``, the error the curve rises to), with an interval."""
    law = cast(ErrorLink, law_for(result, "loss_for_error"))
    target = positive_array(error, "target error")
    value = law.loss_at_error(result.params, target)
    if not np.isfinite(value).all():
        ceiling = result.params.get("eps", float("nan"))
        raise FitError(
            f"a target error must lie below the fitted eps = {ceiling:.4g} (the error of a "
            f"model that learnt nothing); got {target.tolist()!r}"
        )

    def loss(p: dict[str, float]) -> np.ndarray:
        return law.loss_at_error(p, target)

    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        lo, hi = interval(result, loss, level)
    return {
        "error": target,
        "model_loss": value,
        "lo": lo,
        "hi": hi,
        "level": level,
        "method": method_text(result),
    }
