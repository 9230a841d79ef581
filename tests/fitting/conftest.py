"""Shared fixtures for the fitting tests: the published data sets, read in place."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def chinchilla_frame() -> pd.DataFrame:
    """Besiroglu et al. 2024's digitised Chinchilla points, as in their replication:
    D = C / (6 N), the 5 highest losses dropped (240 points). Source:
    epoch-research/analyzing-chinchilla, data/svg_extracted_data.csv."""
    path = DATA / "epoch_chinchilla" / "svg_extracted_data.csv"
    if not path.exists():
        pytest.skip(f"published data not found at {path}")
    raw = pd.read_csv(path).sort_values("loss").iloc[:-5]
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
