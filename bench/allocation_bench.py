"""Chinchilla's three allocation approaches on published data, timed.

    .venv/bin/python bench/allocation_bench.py [--gadre-full PATH/model_losses.csv]

For each data set: Approach 1 (envelope), 2 (IsoFLOP) and 3 (parametric law) with their
default intervals (500 resamples for 1 and 2, 200 bootstrap refits for 3), a and b, and
tokens per parameter at 1e21 and 5.76e23 FLOPs, beside Hoffmann et al. 2022's published a
(0.50, 0.49, 0.46), and the wall time of each approach (after one warm-up run, so imports
are not counted).

Data: the 240 Chinchilla points of Besiroglu et al. 2024 (examples/, the 5 highest losses
dropped) and Gadre et al. 2024's 34 C4 runs (tests/data/, C4 validation split). With
``--gadre-full`` (the flattened `model_losses.csv` of mlfoundations/scaling, e.g.
../shared/data/overtraining_gadre2024) the RedPajama and RefinedWeb runs are added.
Gadre et al.'s grid puts one run of each size about every factor 2 in compute, so their
IsoFLOP and envelope bins are also shown 0.3 decades wide.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fitting.analyses.allocation_report import allocation_report  # noqa: E402
from tests.published import CHINCHILLA, GADRE_C4  # noqa: E402

BUDGETS = (1e21, 5.76e23)


def chinchilla() -> pd.DataFrame:
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


def gadre(path: Path, corpus: str | None = None) -> pd.DataFrame:
    raw = pd.read_csv(path)
    rows = raw[raw["val_data"].str.contains("c4_val")]
    if corpus is not None:
        rows = rows[rows["train_dataset"] == corpus]
    return pd.DataFrame(
        {
            "run": rows["run"],
            "params": rows["params"].astype(float),
            "params_non_embedding": rows["params_no_embed"].astype(float),
            "tokens": rows["tokens"].astype(float),
            "loss": rows["loss"],
        }
    ).reset_index(drop=True)


def iv(pair: list[float], fmt: str) -> str:
    return f"[{pair[0]:{fmt}}, {pair[1]:{fmt}}]"


def table(name: str, frame: pd.DataFrame, **options: object) -> list[str]:
    allocation_report(frame, BUDGETS, bootstrap=20, fit_bootstrap=5, **options)  # warm-up
    report = allocation_report(frame, BUDGETS, **options)
    lines = []
    for ans in report["approaches"]:
        cells = [name, ans["title"], f"{ans['hoffmann2022']['a']:.2f}"]
        if "error" in ans:
            cells += ["not available", "", "", "", f"{ans['duration_s']:.2f}"]
            cells.append(ans["error"][:90])
        else:
            cells.append(f"{ans['a']:.3f} {iv(ans['a_interval'], '.3f')}")
            cells.append(f"{ans['b']:.3f} {iv(ans['b_interval'], '.3f')}")
            for row in ans["at_budgets"]:
                cells.append(
                    f"{row['tokens_per_param']:.1f} {iv(row['tokens_per_param_interval'], '.1f')}"
                )
            cells.append(f"{ans['duration_s']:.2f}")
            cells.append(f"{len(ans.get('flags') or [])} flag(s)")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gadre-full", type=Path, default=None)
    args = parser.parse_args()
    sets: list[tuple[str, pd.DataFrame, dict[str, object]]] = [
        ("Chinchilla (240)", chinchilla(), {}),
        ("Gadre C4 (34)", gadre(GADRE_C4), {}),
        ("Gadre C4 (34), bins 0.3", gadre(GADRE_C4), {"bin_width": 0.3}),
    ]
    if args.gadre_full:
        for corpus in ("rpj", "rw_original"):
            frame = gadre(args.gadre_full, corpus)
            sets.append((f"Gadre {corpus} ({len(frame)}), bins 0.3", frame, {"bin_width": 0.3}))
    print(
        "| data | approach | Hoffmann a | a | b | tokens/param at 1e21 "
        "| tokens/param at 5.76e23 | s | flags |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for name, frame, options in sets:
        for line in table(name, frame, **options):
            print(line, flush=True)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s (accounting: C = 6 N D, all parameters)")


if __name__ == "__main__":
    main()
