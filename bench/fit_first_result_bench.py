"""How soon the Fit page's background fit (`app.dashboard.fitrunner`) has its first result
(the point estimate with quick intervals) and its full one, on the shipped data.

    .venv/bin/python -m bench.fit_first_result_bench [--repeat 3]

Cases: chinchilla on the 245 Chinchilla models (examples/chinchilla_besiroglu2024.csv),
defaults (the bootstrap, 400 resamples); multi_power on the 25M model's curves of Luo et
al. (examples/luo2025_25m) with the bootstrap, 200 resamples: on their three training
curves and on all nine. Times from the start of the thread; median of the repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _stores(root: Path) -> Any:
    from fitting.schedules import ScheduleSpec
    from store.core import Store
    from store.importers import import_files
    from store.runfacts import set_facts
    from tests.published import CHINCHILLA, LUO_25M, LUO_TRAIN

    store = Store(root)
    import_files(store, [CHINCHILLA], project="chin")
    every = sorted(p.stem for p in LUO_25M.glob("*.csv"))
    for project, names in (("luo3", LUO_TRAIN), ("luo9", every)):
        import_files(store, [LUO_25M / f"{n}.csv" for n in names], project=project)
        set_facts(
            store, project, {n: {"schedule": ScheduleSpec.luo2025(n).to_json()} for n in names}
        )
    return store


CASES = [
    ("chinchilla, 245 points, bootstrap 400 (default)", "chin", "chinchilla", "final", {}),
    ("multi_power, 3 curves, bootstrap 200", "luo3", "multi_power", "all", {"bootstrap": 200}),
    ("multi_power, 9 curves, bootstrap 200", "luo9", "multi_power", "all", {"bootstrap": 200}),
]


def measure(
    store: Any, project: str, law: str, reduce: str, options: dict[str, Any]
) -> tuple[float, float]:
    from app.dashboard import fitrunner
    from fitting.jobs import select_data

    selection = {"runs": None, "splits": None, "reduce": reduce, "finished": True}
    frame = select_data(store, project, selection)
    run = fitrunner.start(store, project, law, selection, options, frame)
    t0 = time.perf_counter()
    run.join()
    snap = run.snapshot()
    assert snap.state == "done", snap.error
    return float(snap.first_s or 0.0), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f} (1 min) at start")
    with tempfile.TemporaryDirectory() as tmp:
        store = _stores(Path(tmp) / "store")
        measure(store, *CASES[0][1:])  # imports and first-call costs out of the timings
        for name, *case in CASES:
            times = [measure(store, *case) for _ in range(args.repeat)]
            first = statistics.median(t[0] for t in times)
            full = statistics.median(t[1] for t in times)
            print(f"{name}: first result {first:.2f} s, full result {full:.2f} s")
    print(f"load {os.getloadavg()[0]:.2f} (1 min) at the end")


if __name__ == "__main__":
    main()
