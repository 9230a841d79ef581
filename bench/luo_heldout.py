"""Luo et al. 2025's held-out test at 25M, 100M and 400M: fit on three curves, predict six.

For each model size, `multi_power` and `lr_annealing` are fitted on ``cosine_24000``,
``constant_24000`` and ``wsdcon_9`` and predict the six other schedules' curves; the
metrics (R², MAE, RMSE on raw loss, PredE = mean |L - L_hat| / L, WorstE = max of it) are
taken per curve and averaged over the six, as the authors do. Each fit is run twice: with
the exact per-step LR rebuilt from the schedule names (``fit --schedule RUN=SPEC``,
`ScheduleSpec.luo2025`) and with the logged LR only (sparse, linearly interpolated).

Data: ../shared/data/multipowerlaw_luo2025 (thu-yao-01-luo/MultiPowerLaw, MIT); the point
at the very end of a 24,000-step schedule is dropped, as the authors do.

    python bench/luo_heldout.py [--data DIR] [--out bench/results/luo_heldout.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from tests.published import LUO_TEST as TEST
from tests.published import LUO_TRAIN as TRAIN
from tests.published import luo_metrics

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multipowerlaw_luo2025"


def curves(folder: Path, names: tuple[str, ...]) -> pd.DataFrame:
    parts = []
    for name in names:
        part = pd.read_csv(folder / f"{name}.csv").assign(run=name)
        parts.append(part[part["step"] < 24000] if name.endswith("24000") else part)
    return pd.concat(parts, ignore_index=True)


def run_one(folder: Path, law: str, exact: bool) -> dict[str, object]:
    import fitting
    from fitting.schedules import ScheduleSpec

    train, test = curves(folder, TRAIN), curves(folder, TEST)
    options = {"schedules": {n: str(ScheduleSpec.luo2025(n)) for n in TRAIN}} if exact else {}
    t0 = time.perf_counter()
    result = fitting.fit(law, train, **options)
    seconds = time.perf_counter() - t0
    # The test curves are predicted from their exact schedules either way: the question
    # is what the fit learned from the training curves' LR.
    specs = {n: str(ScheduleSpec.luo2025(n)) for n in TEST}
    pred = result.predict(test.assign(schedule=test["run"].map(specs)))
    return {
        "law": law,
        "lr": "exact schedule" if exact else "logged LR, interpolated",
        "fit_s": round(seconds, 2),
        "params": result.params,
        "at_bound": (result.checks or {}).get("at_bound") or {},
        "notes": len((result.checks or {}).get("notes") or []),
        **luo_metrics(test, pred),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("bench/results/luo_heldout.json"))
    args = parser.parse_args()
    out: dict[str, list[dict[str, object]]] = {}
    for size in ("25", "100", "400"):
        folder = args.data / f"csv_{size}"
        out[f"{size}M"] = [
            run_one(folder, law, exact)
            for law in ("multi_power", "lr_annealing")
            for exact in (True, False)
        ]
        for row in out[f"{size}M"]:
            print(
                f"{size:>4}M {row['law']:<13} {row['lr']:<24} R2 {row['R2']:.4f} "
                f"MAE {row['MAE']:.5f} RMSE {row['RMSE']:.5f} PredE {row['PredE']:.5f} "
                f"WorstE {row['WorstE']:.5f}  ({row['fit_s']} s, at bound {row['at_bound']})",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
