"""Laws of one size variable x, chosen by the option ``x`` (params, tokens, FLOPs or step)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fitting.errors import FitError
from fitting.laws.base import Law, Prepared, group_ids, loss_column, positive_column

X_COLUMNS = ("params", "tokens", "flops", "step")


class OneInputLaw(Law):
    """Resolves ``x`` (the first of X_COLUMNS the data has, unless given) and prepares
    ``log x``; subclasses give the parameters and the formula in ``prep.extra["logx"]``."""

    inputs: ClassVar[tuple[str, ...]] = ("params",)  # or tokens, flops, step (option x)
    x_columns: ClassVar[tuple[str, ...]] = X_COLUMNS

    def resolve(self, data: pd.DataFrame, **options: Any) -> dict[str, Any]:
        out = dict(options)
        x = out.get("x")
        if x is None:
            present = [c for c in X_COLUMNS if c in data.columns and data[c].notna().any()]
            if not present:
                raise FitError(
                    f"law {self.name!r} needs one of the columns {', '.join(X_COLUMNS)}; "
                    f"the data has {', '.join(map(str, data.columns))}"
                )
            x = present[0]
        if x not in X_COLUMNS:
            raise FitError(f"{self.name}: x must be one of {', '.join(X_COLUMNS)}, not {x!r}")
        out["x"] = x
        return out

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        x_col = self.resolve(data, **options)["x"]
        if x_col not in data.columns:
            raise FitError(f"{self.name}: the data has no column {x_col!r}", column=x_col)
        x = positive_column(data, x_col, self.name)
        y, mask = loss_column(data, self.name, for_fit)
        return Prepared(y, mask, group_ids(data), scale=x, extra={"logx": np.log(x)})
