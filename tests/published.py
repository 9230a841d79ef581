"""Where the tests find the published data they check against.

Each set is a small file checked into the repository, so a fresh clone runs every reference
test: the README's example files (`examples/`, sources in examples/README.md) and extracts
under `tests/data/` (sources, licences and cuts in tests/data/README.md).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA = Path(__file__).resolve().parent / "data"

# Besiroglu et al. 2024's digitisation of Hoffmann et al. 2022's Fig. 4 (245 models).
CHINCHILLA = EXAMPLES / "chinchilla_besiroglu2024.csv"
# Luo et al. 2025: the 25M model's curves under 9 schedules (`step, lr, loss`).
LUO_25M = EXAMPLES / "luo2025_25m"
# Gadre et al. 2024: the 34 models trained on C4, each on its 8 validation sets.
GADRE_C4 = DATA / "gadre2024_c4_original.csv"
