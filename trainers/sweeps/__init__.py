"""Shipped sweep specs (TOML), package data of `trainers`; see `trainers.sweep`.

`shipped()` lists them by name with their `[sweep] description`, reading only the TOML
(no torch), for `scalinglab sweep --help`.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

DIR = Path(__file__).parent


def shipped() -> list[tuple[str, str, int]]:
    """(name, one-line description, number of runs) of every shipped spec, by name."""
    out = []
    for path in sorted(DIR.glob("*.toml")):
        with open(path, "rb") as fh:
            spec = tomllib.load(fh)
        grid = spec.get("grid", {})
        runs = len(spec.get("runs", []))
        n = (math.prod(len(v) for v in grid.values()) if grid or not runs else 0) + runs
        out.append((path.stem, str(spec.get("sweep", {}).get("description", "")), n))
    return out
