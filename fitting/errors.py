"""Errors raised by the fitting engine (degenerate fits, missing inputs) and the warning
about data it leaves out."""

from __future__ import annotations

from store.errors import BadInputError, NotEnoughDataError


class FitError(BadInputError):
    """The data cannot support the requested fit (too few points, constant loss, NaN,
    a law whose input columns are missing, an unknown law or parameter)."""


class TooFewPointsError(FitError, NotEnoughDataError):
    """Fewer points than the law has free parameters (plus one)."""


class DataWarning(UserWarning):
    """Data left out of a fit (a diverged run); the message names it and says why."""
