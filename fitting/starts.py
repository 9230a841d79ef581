"""Where the multi-start optimiser begins: the law's grid, its guess and any user starts.

Its own module so that the engine and the checks (which refit) both take it without
importing each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fitting.errors import FitError
from fitting.objective import Problem


def start_grid(problem: Problem, extra: Any = None) -> np.ndarray:
    """The law's grid plus its guess plus any user starts, fixed values filled in."""
    law, prep = problem.law, problem.prep
    guess = np.asarray(law.guess(prep), dtype=float)[None, :]
    if isinstance(extra, str) and extra == "guess":
        rows = [guess]
    else:
        rows = [guess, np.asarray(law.starts(prep), dtype=float)]
        if extra is not None:
            rows.append(_user_starts(problem, extra))
    starts = np.vstack(rows)
    fixed = np.setdiff1d(np.arange(len(problem.params)), problem.free)
    starts[:, fixed] = problem.theta_fixed[fixed]
    return starts


def _user_starts(problem: Problem, extra: Any) -> np.ndarray:
    names = problem.names
    if isinstance(extra, dict):
        extra = [extra]
    if isinstance(extra, list) and extra and isinstance(extra[0], dict):
        base = problem.law.guess(problem.prep)
        out = np.repeat(np.asarray(base, dtype=float)[None, :], len(extra), axis=0)
        for i, row in enumerate(extra):
            for key, value in row.items():
                if key not in names:
                    raise FitError(f"start names unknown parameter {key!r}")
                out[i, names.index(key)] = float(value)
        return out
    arr = np.atleast_2d(np.asarray(extra, dtype=float))
    if arr.shape[1] != len(names):
        raise FitError(f"starts must have {len(names)} columns ({', '.join(names)})")
    return arr
