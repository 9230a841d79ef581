"""The registry of scaling laws: `LAWS[name]` is a Law instance (see `fitting.laws.base`)."""

from __future__ import annotations

from fitting.laws.base import Law, Parameter, Prepared

LAWS: dict[str, Law] = {}

__all__ = ["LAWS", "Law", "Parameter", "Prepared"]
