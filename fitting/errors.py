"""Errors raised by the fitting engine: degenerate fits and missing inputs."""

from __future__ import annotations

from store.errors import BadInputError, NotEnoughDataError


class FitError(BadInputError):
    """The data cannot support the requested fit (too few points, constant loss, NaN,
    a law whose input columns are missing, an unknown law or parameter)."""


class TooFewPointsError(FitError, NotEnoughDataError):
    """Fewer points than the law has free parameters (plus one)."""
