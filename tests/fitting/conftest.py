"""Shared fixtures for the fitting tests: the published data sets (tests/published.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.published import CHINCHILLA


def chinchilla_frame() -> pd.DataFrame:
    """Besiroglu et al. 2024's digitised Chinchilla points, as in their replication:
    D = C / (6 N), the 5 highest losses dropped (240 points). Source:
    epoch-research/analyzing-chinchilla, data/svg_extracted_data.csv."""
    raw = pd.read_csv(CHINCHILLA).sort_values("loss").iloc[:-5]
    n = raw["Model Size"].to_numpy(float)
    return pd.DataFrame(
        {
            "run": [f"m{i}" for i in range(len(raw))],
            "params": n,
            "tokens": raw["Training FLOP"].to_numpy(float) / (6 * n),
            "loss": raw["loss"].to_numpy(float),
        }
    )


@pytest.fixture(scope="session")
def chinchilla() -> pd.DataFrame:
    return chinchilla_frame()


@pytest.fixture(scope="session")
def chinchilla_fit(chinchilla: pd.DataFrame):
    import fitting

    return fitting.fit("chinchilla", chinchilla)
