"""Tracker readers, timed: TensorBoard, W&B offline, MLflow and trackio runs into the store.

    .venv/bin/python bench/tracker_bench.py [--runs 100] [--steps 10000] [--wandb-runs 10]
        [--wandb-steps 2000] [--mlflow-backends file,sqlite] [--only tensorboard,wandb,
        mlflow,trackio]

TensorBoard: `--runs` runs of `--steps` steps, each step a train loss and an LR (an eval
loss every 100 steps), written with TensorBoard's own `EventFileWriter`. Timed:
`scalinglab import` of the folder into a fresh store (read, validate, write, one
transaction), against TensorBoard's own reader alone (`EventAccumulator.Reload()` and
`Scalars(tag)` for every tag of every run, size guidance 0 = keep every point).

W&B: `--wandb-runs` offline runs of `--wandb-steps` steps written by `wandb.init(mode=
"offline")`. wandb >= 0.20 has no Python reader of its run files (its Go core reads them
for `wandb sync`), so the import is timed against reading the records alone (framing +
wandb's protobuf decoding), the part of the import that is the tracker's format.

MLflow: `--runs` runs of `--steps` steps (the same metrics as TensorBoard's: `train_loss`
and `lr` every step, `val_loss` every 100) in an `mlruns/` file store and a SQLite
store, written with `MlflowClient.log_batch` (1,000 metrics a call: one `log_metric` per
point costs about a millisecond, so 2 M points would take over half an hour). Timed:
the import against `MlflowClient.get_metric_history` alone for the same metrics of the
same runs (what the import itself calls). trackio: `--runs` x `--steps` written by
`trackio.init/log/finish` (offline, `TRACKIO_DIR` in the bench's folder), the import
against trackio's own read path alone (`SQLiteStorage.get_logs` of every run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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


MLFLOW_BATCH = 1_000


def mlflow_uri(root: Path, backend: str) -> str:
    return (root / "mlruns").as_uri() if backend == "file" else f"sqlite:///{root / 'mlflow.db'}"


def mlflow_path(root: Path, backend: str) -> Path:
    return root / "mlruns" if backend == "file" else root / "mlflow.db"


def write_mlflow(root: Path, backend: str, runs: int, steps: int) -> int:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    root.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(mlflow_uri(root, backend))
    experiment = client.create_experiment("bench")
    n = 0
    for r in range(runs):
        run_id = client.create_run(experiment, run_name=f"n{r}").info.run_id
        client.log_batch(run_id, params=[Param("n_params", str(1000 * (r + 1)))])
        metrics = []
        for step in range(steps):
            time_ms = 1_700_000_000_000 + step
            metrics.append(Metric("train_loss", 4.0 - step / steps, time_ms, step))
            metrics.append(Metric("lr", 3e-4, time_ms, step))
            if step % 100 == 0:
                metrics.append(Metric("val_loss", 4.2, time_ms, step))
        for start in range(0, len(metrics), MLFLOW_BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + MLFLOW_BATCH])
        client.set_terminated(run_id)
        n += len(metrics)
    return n


def mlflow_history_alone(root: Path, backend: str) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri(root, backend))
    n = 0
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], max_results=1000):
            for key in run.data.metrics:
                n += len(client.get_metric_history(run.info.run_id, key))
    return n


def write_trackio(runs: int, steps: int) -> int:
    import trackio

    for r in range(runs):
        trackio.init(project="bench", name=f"n{r}", config={"n_params": 1000 * (r + 1)})
        for step in range(steps):
            metrics = {"train/loss": 4.0 - step / steps, "train/lr": 3e-4}
            if step % 100 == 0:
                metrics["eval/loss"] = 4.2
            trackio.log(metrics, step=step)
        trackio.finish()
    return runs * (2 * steps + len(range(0, steps, 100)))


def trackio_reader_alone() -> int:
    from trackio.sqlite_storage import SQLiteStorage

    n = 0
    for name in SQLiteStorage.get_runs("bench"):
        for log in SQLiteStorage.get_logs("bench", name):
            n += sum(1 for key in log if key not in ("step", "timestamp"))
    return n


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
    parser.add_argument("--mlflow-backends", default="file,sqlite")
    parser.add_argument("--only", default="tensorboard,wandb,mlflow,trackio")
    args = parser.parse_args()
    only = set(args.only.split(","))
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "tensorboard" in only:
            bench_tensorboard(work, args, results)
        if args.wandb_runs and "wandb" in only:
            bench_wandb(work, args, results)
        if "mlflow" in only:
            for backend in args.mlflow_backends.split(","):
                bench_mlflow(work, backend, args, results)
        if "trackio" in only:
            bench_trackio(work, args, results)
    print(json.dumps(results, indent=2))


def bench_mlflow(work: Path, backend: str, args: argparse.Namespace, results: dict) -> None:
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 writes a file store only if asked
    root = work / f"mlflow-{backend}"
    write_s, metrics = timed(write_mlflow, root, backend, args.runs, args.steps)
    path = mlflow_path(root, backend)
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    size = sum(f.stat().st_size for f in files)
    reader_s, read = warm(mlflow_history_alone, root, backend)
    import_into_fresh_store(path, work)
    import_s, points = import_into_fresh_store(path, work)
    results[f"mlflow-{backend}"] = {
        "runs": args.runs,
        "steps": args.steps,
        "metrics": metrics,
        "mb": round(size / 1e6, 1),
        "write_s": round(write_s, 2),
        "get_metric_history_alone_s": round(reader_s, 2),
        "history_points": read,
        "import_s": round(import_s, 2),
        "points": points,
        "import_metrics_per_s": round(metrics / import_s),  # type: ignore[operator]
    }


def bench_trackio(work: Path, args: argparse.Namespace, results: dict) -> None:
    # trackio fixes its folder when imported: set it first, and stay offline.
    folder = work / "trackio"
    os.environ["TRACKIO_DIR"] = str(folder)
    os.environ["HF_HUB_OFFLINE"] = "1"
    with contextlib.redirect_stdout(sys.stderr):  # trackio prints its progress
        write_s, values = timed(write_trackio, args.runs, args.steps)
    db = folder / "bench.db"
    reader_s, read = warm(trackio_reader_alone)
    import_into_fresh_store(db, work)
    import_s, points = import_into_fresh_store(db, work)
    results["trackio"] = {
        "runs": args.runs,
        "steps": args.steps,
        "values": values,
        "mb": round(db.stat().st_size / 1e6, 1),
        "write_s": round(write_s, 2),
        "get_logs_alone_s": round(reader_s, 2),
        "values_read": read,
        "import_s": round(import_s, 2),
        "points": points,
        "import_values_per_s": round(values / import_s),  # type: ignore[operator]
    }


def bench_tensorboard(work: Path, args: argparse.Namespace, results: dict) -> None:
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


def bench_wandb(work: Path, args: argparse.Namespace, results: dict) -> None:
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


if __name__ == "__main__":
    main()
