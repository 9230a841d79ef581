"""The extrapolation test as an analysis: fit on all but the largest scale, score the rest."""

from __future__ import annotations

from typing import Any

import pandas as pd

from fitting.laws.base import Law


def extrapolation_test(
    law: str | Law, data: pd.DataFrame, *, holdout_factor: float = 1.5, **options: Any
) -> dict[str, Any]:
    """Refit ``law`` without the rows within ``holdout_factor`` of the largest scale and
    report the prediction error on them (mean/max relative error, MAE, RMSE)."""
    from fitting import checks
    from fitting.engine import get_law, make_problem

    law = get_law(law)
    problem, engine, _ = make_problem(law, data, options)
    return checks.holdout_refit(
        problem, holdout_factor=holdout_factor, n_polish=int(engine["n_polish"])
    )
