"""Store benchmarks: CSV import, inbox writes, ingest, downsampled curves, runs list.

Each measurement is set beside the naive way of doing the same in this run, and the
ratio is reported. Usage:

    .venv/bin/python bench/store_bench.py [--rows 10000000] [--out bench/results/store.md]

Everything is written to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store import queries
from store.core import Store
from store.importers import import_files
from store.inbox import InboxWriter
from store.ingest import ingest_inbox

Row = tuple[str, str, str, str, str]


CPU: dict[str, float] = {}


def cpu_seconds() -> float:
    """CPU time of this process (all threads): insensitive to other jobs on the box."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], object], label: str | None = None) -> float:
    """Wall seconds of one call; with a label, its CPU seconds are kept in CPU."""
    cpu = cpu_seconds()
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    if label:
        CPU[label] = cpu_seconds() - cpu
    return wall


def median_time(fn: Callable[[], object], repeat: int = 7, label: str | None = None) -> float:
    """Median wall seconds; with a label, the median CPU seconds are kept in CPU."""
    fn()  # warm caches, as a dashboard that refreshes would
    walls, cpus = [], []
    for _ in range(repeat):
        walls.append(timed(fn, "_last"))
        cpus.append(CPU["_last"])
    if label:
        CPU[label] = statistics.median(cpus)
    return statistics.median(walls)


def write_long_csv(path: Path, rows: int, runs: int = 100) -> None:
    per_run = rows // runs
    duckdb.sql(
        f"""COPY (SELECT 'run_' || (i // {per_run}) AS run, i % {per_run} AS step,
            round(2 + 5 / sqrt(1 + i % {per_run}) + random() * 0.01, 6) AS loss,
            3e-4 AS lr, (i % {per_run}) * 4096 AS tokens
        FROM range({rows}) t(i)) TO '{path}' (HEADER)"""
    )


def naive_sql_rate(csv: Path, sample: int) -> float:
    """pandas read_csv + to_sql (row inserts into SQLite): points per second."""
    frame = pd.read_csv(csv, nrows=sample)
    con = sqlite3.connect(":memory:")

    def load() -> None:
        pd.read_csv(csv, nrows=sample).to_sql("points", con, if_exists="replace", index=False)

    seconds = timed(load)
    con.close()
    return len(frame) / seconds


def bench_import(tmp: Path, rows: int) -> list[Row]:
    csv = tmp / "long.csv"
    write_long_csv(csv, rows)
    store = Store(tmp / "import-store")
    store.ensure()
    os.sync()  # the user's file has long been on disk: its writeback is not the import's
    seconds = timed(lambda: import_files(store, [csv], project="bench"), "import")
    rate = rows / seconds
    naive = naive_sql_rate(csv, min(rows, 300_000))
    return [
        (
            f"CSV import, {rows:,}-row long CSV",
            f"{rate / 1e6:.2f} M points/s ({seconds:.2f} s wall, {CPU['import']:.2f} s CPU)",
            "≥ 2 M points/s",
            f"{naive / 1e6:.3f} M points/s (pandas to_sql → SQLite, 300k-row sample)",
            f"{rate / naive:.0f}x",
        )
    ]


def file_floor_us(folder: Path, files: int) -> float:
    """What the disk charges per shard before any Parquet: create, write 40 kB, rename.

    The writer's rate moves with this (it varied 4x over a day on the shared machine),
    so it is reported beside it."""
    folder.mkdir()
    data = b"x" * 40_000
    start = time.perf_counter()
    for i in range(files):
        tmp = folder / f".tmp-{i}"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, data)
        os.close(fd)
        os.replace(tmp, folder / f"{i}")
    return (time.perf_counter() - start) / files * 1e6


def bench_writer(tmp: Path, points: int) -> list[Row]:
    store = Store(tmp / "writer-store")
    store.ensure()
    steps = np.arange(points)
    loss = 2.0 + 5.0 / np.sqrt(1.0 + steps)

    def write() -> None:
        with InboxWriter(store, "bench", "w", flush_rows=10**9) as w:
            for start in range(0, points, 1000):
                w.log_many(
                    {
                        "step": steps[start : start + 1000],
                        "loss": loss[start : start + 1000],
                        "lr": 3e-4,
                    }
                )
                w.flush()

    # File creation on a shared disk jitters from run to run: median of three.
    walls, cpus = [], []
    for _ in range(3):
        walls.append(timed(write, "writer"))
        cpus.append(CPU["writer"])
    seconds, CPU["writer"] = statistics.median(walls), statistics.median(cpus)
    spread = f"{points / max(walls) / 1e6:.2f} to {points / min(walls) / 1e6:.2f}"
    rate = points / seconds
    floor_us = file_floor_us(tmp / "floor", points // 1000)
    # Naive: one INSERT per point into DuckDB, on a sample.
    con = duckdb.connect(str(tmp / "naive.duckdb"))
    con.execute("CREATE TABLE p (run VARCHAR, step BIGINT, loss DOUBLE, lr DOUBLE)")
    sample = 2_000
    naive_s = timed(
        lambda: [
            con.execute("INSERT INTO p VALUES ('w', ?, ?, 3e-4)", [int(s), float(v)])
            for s, v in zip(steps[:sample], loss[:sample], strict=True)
        ]
    )
    con.close()
    naive = sample / naive_s
    return [
        (
            "Inbox writer, 1,000-row shards",
            f"{rate / 1e6:.2f} M points/s (median of 3 runs of {points // 1000} shards, "
            f"{spread}; {points / CPU['writer'] / 1e6:.2f} M points per CPU-second; "
            f"creating, writing and renaming a file alone took {floor_us:.0f} µs here)",
            "≥ 1 M points/s",
            f"{naive / 1e3:.1f} k points/s (one DuckDB INSERT per point)",
            f"{rate / naive:.0f}x",
        )
    ]


def bench_ingest(tmp: Path, points: int) -> tuple[list[Row], Store]:
    store = Store(tmp / "ingest-store")
    store.ensure()
    rng = np.random.default_rng(0)
    steps = np.arange(points)
    loss = 2.0 + 5.0 / np.sqrt(1.0 + steps) + rng.normal(0, 0.01, points)
    with InboxWriter(store, "bench", "big", flush_rows=10**9) as w:
        for start in range(0, points, 10_000):
            sl = slice(start, start + 10_000)
            w.log_many(
                {"step": steps[sl], "loss": loss[sl], "lr": 3e-4, "tokens": steps[sl] * 4096.0}
            )
            w.flush()
    os.sync()  # the shards were written over a training run, not just now
    seconds = timed(lambda: ingest_inbox(store), "ingest")
    naive = naive_sql_rate_frame(steps, loss, min(points, 300_000))
    return [
        (
            f"Ingest {points:,} inbox points ({points // 10_000} shards)",
            f"{seconds:.2f} s wall, {CPU['ingest']:.2f} s CPU",
            "≤ 2 s",
            f"{points / naive:.0f} s extrapolated (pandas to_sql → SQLite)",
            f"{points / naive / seconds:.0f}x",
        ),
        *bench_live_ingest(store, points),
    ], store


def bench_live_ingest(store: Store, points: int) -> list[Row]:
    """What `serve` pays every 10 s while that run goes on: 10 shards of 1,000 new
    points, then a resume that re-logs 1,000 steps (the replace path: tiles rebuilt)."""

    def log(first: int, n: int, shards: int) -> None:
        steps = np.arange(first, first + n)
        with InboxWriter(store, "bench", "big", flush_rows=10**9) as w:
            for part in np.array_split(steps, shards):
                w.log_many({"step": part, "loss": 2.0 + 1.0 / (1.0 + part), "lr": 3e-4})
                w.flush()

    log(points, 10_000, 10)
    append = timed(lambda: ingest_inbox(store), "append")
    log(points - 1_000, 1_000, 1)
    resume = timed(lambda: ingest_inbox(store), "resume")
    return [
        (
            f"Ingest 10 shards (10,000 points) continuing that {points:,}-point run",
            f"{append * 1000:.0f} ms wall, {CPU['append'] * 1000:.0f} ms CPU",
            "—",
            "—",
            "—",
        ),
        (
            "Ingest a resume that re-logs 1,000 of its steps (curve tiles rebuilt)",
            f"{resume * 1000:.0f} ms wall, {CPU['resume'] * 1000:.0f} ms CPU",
            "—",
            "—",
            "—",
        ),
    ]


def naive_sql_rate_frame(steps: np.ndarray, loss: np.ndarray, sample: int) -> float:
    frame = pd.DataFrame({"run": "big", "step": steps[:sample], "loss": loss[:sample]})
    con = sqlite3.connect(":memory:")
    seconds = timed(lambda: frame.to_sql("points", con, index=False))
    con.close()
    return sample / seconds


def bench_curve(store: Store, points: int) -> list[Row]:
    fast = median_time(
        lambda: queries.curve(store, "bench", ["big"], max_points=2000), label="curve"
    )
    got = queries.curve(store, "bench", ["big"], max_points=2000)

    def naive() -> None:
        with store.connect(read_only=True) as con:
            frame = con.execute(
                "SELECT run, split, step, loss FROM points WHERE project = 'bench' AND run = 'big'"
            ).df()
        bucket = (frame["step"] * 500 // (frame["step"].max() + 1)).rename("b")
        frame.groupby(["run", "split", bucket])["loss"].agg(["min", "max", "first", "last"])

    slow = median_time(naive, repeat=3)
    return [
        (
            f"Downsampled curve ({len(got)} points) of a {points:,}-point run",
            f"{fast * 1e3:.0f} ms wall, {CPU['curve'] * 1e3:.0f} ms CPU",
            "≤ 50 ms",
            f"{slow * 1e3:.0f} ms (whole curve into pandas, bucket there)",
            f"{slow / fast:.0f}x",
        )
    ]


def bench_runs_list(tmp: Path) -> list[Row]:
    csv = tmp / "runs.csv"
    write_long_csv(csv, 1_000_000, runs=1000)
    store = Store(tmp / "runs-store")
    import_files(store, [csv], project="bench")
    fast = median_time(lambda: queries.list_runs(store, "bench"), label="runs")

    def naive() -> None:
        with store.connect(read_only=True) as con:
            frame = con.execute("SELECT run, step, loss FROM points").df()
        frame.sort_values("step").groupby("run").agg(
            n_points=("step", "size"), last_step=("step", "max"), last_loss=("loss", "last")
        )

    slow = median_time(naive, repeat=3)
    return [
        (
            "Runs list, 1,000 runs (1 M points)",
            f"{fast * 1e3:.0f} ms wall, {CPU['runs'] * 1e3:.0f} ms CPU",
            "≤ 50 ms",
            f"{slow * 1e3:.0f} ms (all points into pandas, group there)",
            f"{slow / fast:.0f}x",
        )
    ]


NOTES = """
How each figure is taken: the import reads a generated 10-million-row long CSV (100 runs,
columns run, step, loss, lr, tokens) end to end (hash, UTF-8 check, typed DuckDB read,
validation, upsert, run summaries, curve tiles). The writer appends 1,000-row shards
with `InboxWriter.log_many` + `flush`. Ingest moves 1,000 shards of 10,000 points into
the tables (one transaction, curve tiles included); the two rows after it continue that
run as a live trainer would (new points, then a resume that re-logs steps). The curve
is `queries.curve(...,
max_points=2000)` (log-spaced M4 read from the curve tiles) and the runs list is
`queries.list_runs` (median of 7 warm calls each). "CPU" is the process's CPU time
over all its threads: on a shared box it is the steadier figure; on an idle 2-core
machine wall time is roughly CPU / 1.5 to CPU / 2 for the multi-threaded steps.
"""


LOADS: list[float] = []


def note_load() -> None:
    """Keep the 1-minute load average (the CPU the other jobs on the box were using)."""
    LOADS.append(os.getloadavg()[0])


def render(rows: list[Row], command: str) -> str:
    head = "| measurement | scalinglab | target | naive way | ratio |\n|---|---|---|---|---|\n"
    body = "".join(f"| {' | '.join(r)} |\n" for r in rows)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "# Store benchmarks\n\n"
        f"Command: `{command}`  \nDate: {when}  \n"
        "Machine: 2-core CPU, 24 GiB, no GPU; 1-minute load average "
        f"{min(LOADS, default=0):.1f} to {max(LOADS, default=0):.1f} while measuring "
        "(above 2 means other jobs were sharing the CPU, so wall times are pessimistic)."
        "\n\n" + head + body + NOTES
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--writer-points", type=int, default=2_000_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("import", "writer", "ingest", "runs"),
        help="run only these measurements (ingest includes the curve)",
    )
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="scalinglab-bench-") as name:
        tmp = Path(name)
        for step in args.only or ("writer", "import", "ingest", "runs"):
            print(f"running: {step}", flush=True)
            # Write back the last step's files first, so their I/O is not billed here.
            os.sync()
            note_load()
            if step == "import":
                rows += bench_import(tmp, args.rows)
            elif step == "writer":
                rows += bench_writer(tmp, args.writer_points)
            elif step == "ingest":
                ingest_rows, store = bench_ingest(tmp, args.rows)
                rows += ingest_rows + bench_curve(store, args.rows)
            else:
                rows += bench_runs_list(tmp)
            note_load()
            print("  " + " | ".join(rows[-1]), flush=True)
    command = "python bench/store_bench.py " + " ".join(sys.argv[1:])
    text = render(rows, command.strip())
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
