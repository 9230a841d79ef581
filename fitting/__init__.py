"""Scaling laws and the fitting engine. Works on plain arrays and data frames; no torch.

Imports are lazy so that `import fitting` stays cheap for the dashboard and the jobs:
`fitting.LAWS`, `fitting.fit` and `fitting.FitResult` load their modules on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fitting.engine import fit
    from fitting.laws import LAWS
    from fitting.result import FitResult

__all__ = ["LAWS", "FitResult", "fit"]


def __getattr__(name: str) -> Any:
    if name == "LAWS":
        from fitting.laws import LAWS

        return LAWS
    if name == "fit":
        from fitting.engine import fit

        return fit
    if name == "FitResult":
        from fitting.result import FitResult

        return FitResult
    raise AttributeError(f"module 'fitting' has no attribute {name!r}")
