"""Tracker readers, timed: TensorBoard event files and W&B offline runs into the store.

    .venv/bin/python bench/tracker_bench.py [--runs 100] [--steps 10000] [--wandb-runs 10]
        [--wandb-steps 2000]

TensorBoard: `--runs` runs of `--steps` steps, each step a train loss and an LR (an eval
loss every 100 steps), written with TensorBoard's own `EventFileWriter`. Timed:
`scalinglab import` of the folder into a fresh store (read, validate, write, one
transaction), against TensorBoard's own reader alone (`EventAccumulator.Reload()` and
`Scalars(tag)` for every tag of every run, size guidance 0 = keep every point).

W&B: `--wandb-runs` offline runs of `--wandb-steps` steps written by `wandb.init(mode=
"offline")`. wandb >= 0.20 has no Python reader of its run files (its Go core reads them
for `wandb sync`), so the import is timed against reading the records alone (framing +
wandb's protobuf decoding), the part of the import that is the tracker's format.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_tensorboard(root: Path, runs: int, steps: int) -> int:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    n = 0
    for r in range(runs):
        writer = EventFileWriter(str(root / f"n{r}"), max_queue_size=10_000, flush_secs=3600)
        for step in range(steps):
            values = [
                summary_pb2.Summary.Value(tag="train/loss", simple_value=4.0 - step / steps),
                summary_pb2.Summary.Value(tag="train/lr", simple_value=3e-4),
            ]
            if step % 100 == 0:
                values.append(summary_pb2.Summary.Value(tag="eval/loss", simple_value=4.2))
            event = event_pb2.Event(
                wall_time=1e9 + step, step=step, summary=summary_pb2.Summary(value=values)
            )
            writer.add_event(event)
            n += len(values)
        writer.close()
    return n


def tensorboard_reader_alone(root: Path) -> int:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    n = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            n += len(acc.Scalars(tag))
    return n


def write_wandb(root: Path, runs: int, steps: int) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.trackers.wandb_runs import write_runs

    write_runs(root, [(f"w{r}", 1000 * (r + 1), 0.0, steps, True) for r in range(runs)])


def wandb_records_alone(root: Path) -> int:
    from store.trackers import wandb_offline

    rows = 0
    for file in wandb_offline.run_files(root):
        rows += len(wandb_offline.RunFileReader(file).read().rows)
    return rows


def timed(fn: object, *args: object) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start, out


def warm(fn: object, *args: object) -> tuple[float, object]:
    """The second of two calls: imports done and files in the page cache for both."""
    fn(*args)  # type: ignore[operator]
    return timed(fn, *args)


def import_into_fresh_store(path: Path, work: Path) -> tuple[float, int]:
    from store import Store
    from store.importers import import_files

    store_dir = work / "store"
    shutil.rmtree(store_dir, ignore_errors=True)
    store = Store(store_dir)
    store.ensure()
    seconds, report = timed(import_files, store, [path])
    return seconds, report.points  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--wandb-runs", type=int, default=10)
    parser.add_argument("--wandb-steps", type=int, default=2_000)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tb = work / "tb"
        write_s, scalars = timed(write_tensorboard, tb, args.runs, args.steps)
        size = sum(f.stat().st_size for f in tb.rglob("*") if f.is_file())
        reader_s, read = warm(tensorboard_reader_alone, tb)
        import_into_fresh_store(tb, work)
        import_s, points = import_into_fresh_store(tb, work)
        results["tensorboard"] = {
            "runs": args.runs,
            "steps": args.steps,
            "scalars": scalars,
            "mb": round(size / 1e6, 1),
            "write_s": round(write_s, 2),
            "reader_alone_s": round(reader_s, 2),
            "reader_alone_scalars": read,
            "import_s": round(import_s, 2),
            "points": points,
            "import_scalars_per_s": round(scalars / import_s),
        }
        if args.wandb_runs:
            wb = work / "wb"
            write_s, _ = timed(write_wandb, wb, args.wandb_runs, args.wandb_steps)
            records_s, rows = warm(wandb_records_alone, wb)
            import_into_fresh_store(wb, work)
            import_s, points = import_into_fresh_store(wb, work)
            results["wandb"] = {
                "runs": args.wandb_runs,
                "steps": args.wandb_steps,
                "write_s": round(write_s, 2),
                "records_alone_s": round(records_s, 2),
                "rows": rows,
                "import_s": round(import_s, 2),
                "points": points,
                "import_rows_per_s": round(rows / import_s),
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
