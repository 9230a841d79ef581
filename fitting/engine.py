"""The fitting engine (stub: the signature other modules code against)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from fitting.laws.base import Law


def fit(law: str | Law, data: pd.DataFrame, **options: Any) -> Any:
    """Fit ``law`` (a name in ``fitting.LAWS`` or a Law instance) to ``data``."""
    raise NotImplementedError("engine lands shortly")
