"""Where the tests find the published data they check against.

Each set is a small file checked into the repository, so a fresh clone runs every reference
test: the README's example files (`examples/`, sources in examples/README.md) and extracts
under `tests/data/` (sources, licences and cuts in tests/data/README.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA = Path(__file__).resolve().parent / "data"

# Besiroglu et al. 2024's digitisation of Hoffmann et al. 2022's Fig. 4 (245 models).
CHINCHILLA = EXAMPLES / "chinchilla_besiroglu2024.csv"
# Luo et al. 2025: the 25M model's curves under 9 schedules (`step, lr, loss`).
LUO_25M = EXAMPLES / "luo2025_25m"
# Gadre et al. 2024: the 34 models trained on C4, each on its 8 validation sets.
GADRE_C4 = DATA / "gadre2024_c4_original.csv"
# Gadre et al. 2024: the 104 models of the three training corpora (c4_original, rpj,
# rw_original) on 3 of the 8 validation sets (c4_val, paloma_c4_en, de-en).
GADRE_THREE = DATA / "gadre2024_three_corpora.csv"
# Gordon, Duh, Kaplan 2021: the NMT summary table, whole (tab-separated, '#' lines first).
GORDON_NMT = DATA / "gordon2021_nmt.tsv"
# Li, Kudugunta, Zettlemoyer 2025: one sweep of the 17M model, checkpoints included; 15 of
# its rows repeat a run's point with another loss (replicates).
LI_17M = DATA / "li2025_misfitting_17m_sweep.csv"

# Luo et al. 2025's protocol: fit on these three schedules, score on the other six.
LUO_TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
LUO_TEST = (
    "constant_72000",
    "cosine_72000",
    "wsd_20000_24000",
    "wsdld_20000_24000",
    "wsdcon_3",
    "wsdcon_18",
)
# Their published multi-power parameters for the 25M model, fitted on LUO_TRAIN.
LUO_PUBLISHED_25M = {
    "L0": 3.04045406,
    "A": 0.52468604,
    "alpha": 0.50786857,
    "B": 363.78751622,
    "C": 2.06560812,
    "beta": 0.58279013,
    "gamma": 0.64142257,
}


def luo_metrics(frame: pd.DataFrame, pred: np.ndarray) -> dict[str, float]:
    """Luo et al.'s metrics per curve (R², MAE, RMSE on raw loss; PredE and WorstE relative),
    averaged over the curves (`frame`'s runs, in order)."""
    rows = []
    for _, part in frame.assign(pred=pred).groupby("run", sort=False):
        y, p = part["loss"].to_numpy(), part["pred"].to_numpy()
        err = y - p
        rows.append(
            {
                "R2": 1 - np.sum(err**2) / np.sum((y - y.mean()) ** 2),
                "MAE": np.mean(np.abs(err)),
                "RMSE": np.sqrt(np.mean(err**2)),
                "PredE": np.mean(np.abs(err) / y),
                "WorstE": np.max(np.abs(err) / y),
            }
        )
    return {k: float(v) for k, v in pd.DataFrame(rows).mean().items()}


# The items of Li et al.'s (Mis)Fitting checklist (2025) a fit report must answer, in order.
MISFITTING_CHECKLIST = (
    "Functional form",
    "How N and C were counted",
    "Points used",
    "Points excluded",
    "Objective",
    "Optimiser",
    "Starts",
    "Interval method",
    "Extrapolation test",
)
