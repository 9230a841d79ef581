"""Where the single-file store stops meeting its targets: a size sweep (docs/scale-out.md).

    .venv/bin/python bench/scale_bench.py                       # all three sweeps
    .venv/bin/python bench/scale_bench.py --sweep points --steps 3 --browser-at 1 3
    .venv/bin/python bench/scale_bench.py --sweep pending --pending 160 1000 5000
    .venv/bin/python bench/scale_bench.py --sweep runs --runs 1000 10000 50000

`points`: a store grows by 10 M points at a time (100 new runs of 100,000 points, written
as 1,000 shards of 10,000 by `InboxWriter`), and each 10 M is one `ingest_inbox`, so the
issue-2 target "ingest 10 M points in ≤ 2 s" is measured at every size. After each step:
a live run's append (10 shards of 1,000 points to an existing run: what `serve` pays
every 10 s), the runs list, one run's downsampled curve, 20 runs' curves, the data
version, and the database's size. At the steps named by --browser-at, the Runs page in
Chromium against `scalinglab serve` (target ≤ 2 s).

`runs`: stores of 1k, 10k, 50k runs (10 M points in all, imported from a long CSV),
each with the runs list, the data version and the Runs page in Chromium.

`pending`: many trainers, one inbox. With K point shards of 20 points waiting (K/5
live runs: what W writers flushing every 2 s leave between two 10-s ingests is 5 W),
the reads every page makes (runs list, data version; first read of new shards and warm
reads) and the ingest that empties the inbox.

Everything lives in a temporary folder removed at the end. Writes
bench/results/scale.md (and prints it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store import queries  # noqa: E402
from store.core import Store  # noqa: E402
from store.inbox import InboxWriter  # noqa: E402
from store.ingest import ingest_inbox  # noqa: E402

PROJECT = "scale"
RESULTS = ROOT / "bench" / "results" / "scale.md"
STEP_POINTS = 10_000_000
RUNS_PER_STEP = 100
SHARD_ROWS = 10_000
READY = '[data-testid="stApp"][data-test-script-state="notRunning"]'
CHART = '[data-testid="stPlotlyChart"] .scatterlayer .trace'


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def median_wall(fn: Callable[[], object], repeat: int = 5) -> float:
    fn()  # warm, as a page that refreshes is
    return statistics.median(timed(fn)[0] for _ in range(repeat))


def write_step(store: Store, step: int) -> None:
    """10 M new points: 100 runs of 100,000 points, 10,000-row shards."""
    per_run = STEP_POINTS // RUNS_PER_STEP
    steps = np.arange(per_run)
    loss = 2.0 + 5.0 / np.sqrt(1.0 + steps)
    for r in range(RUNS_PER_STEP):
        name = f"s{step:02d}r{r:03d}"
        with InboxWriter(store, PROJECT, name, facts={"params": 10**6 * (r + 1)}) as w:
            for start in range(0, per_run, SHARD_ROWS):
                part = slice(start, start + SHARD_ROWS)
                w.log_many({"step": steps[part], "loss": loss[part], "lr": 3e-4})
                w.flush()


def live_append(store: Store, first_step: int) -> None:
    """A live run continues: 10 shards of 1,000 points on the store's first run."""
    with InboxWriter(store, PROJECT, "s00r000") as w:
        for k in range(10):
            steps = np.arange(first_step + k * 1000, first_step + (k + 1) * 1000)
            w.log_many({"step": steps, "loss": 2.0 + 1.0 / (1.0 + steps), "lr": 3e-4})
            w.flush()


def page_loads(root: Path, repeats: int = 3) -> list[float]:
    """Seconds to a Runs page that is interactive with its plot drawn (fresh loads)."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.harness import CHROMIUM, CHROMIUM_ARGS, Server

    server = Server(root)
    out: list[float] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for i in range(repeats + 1):  # the first load warms the server
                t0 = time.perf_counter()
                page.goto(server.url + "/")
                page.wait_for_selector(READY, timeout=300_000)
                page.locator(CHART).first.wait_for(timeout=300_000)
                if i:
                    out.append(time.perf_counter() - t0)
            browser.close()
    finally:
        server.stop()
    return out


def reads(store: Store) -> dict[str, float]:
    runs = list(queries.list_runs(store, PROJECT)["run"])
    return {
        "list_runs": median_wall(lambda: queries.list_runs(store, PROJECT)),
        "curve1": median_wall(lambda: queries.curve(store, PROJECT, runs[:1], max_points=2000)),
        "curve20": median_wall(lambda: queries.curve(store, PROJECT, runs[:20], max_points=600)),
        "version": median_wall(lambda: queries.data_version(store, PROJECT)),
    }


def sweep_points(tmp: Path, steps: int, browser_at: set[int]) -> list[dict[str, Any]]:
    store = Store(tmp / "points")
    store.ensure()
    rows = []
    for step in range(1, steps + 1):
        write_step(store, step - 1)
        os.sync()  # the shards were written over a training run, not just now
        load = os.getloadavg()[0]
        ingest_wall, ingest_cpu = timed(partial(ingest_inbox, store))
        live_append(store, first_step=STEP_POINTS // RUNS_PER_STEP + (step - 1) * 10_000)
        append_wall, append_cpu = timed(partial(ingest_inbox, store))
        row: dict[str, Any] = {
            "points": step * STEP_POINTS,
            "runs": step * RUNS_PER_STEP,
            "load": load,
            "ingest": ingest_wall,
            "ingest_cpu": ingest_cpu,
            "append": append_wall,
            "append_cpu": append_cpu,
            **reads(store),
            "db_gib": store.db_path.stat().st_size / 2**30,
            "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        }
        if step in browser_at:
            row["page"] = page_loads(store.root)
        rows.append(row)
        print(row, flush=True)
    return rows


def write_long_csv(path: Path, rows: int, runs: int) -> None:
    import duckdb

    per_run = rows // runs
    duckdb.sql(
        f"""COPY (SELECT 'run_' || lpad((i // {per_run})::VARCHAR, 6, '0') AS run,
            i % {per_run} AS step, round(2 + 5 / sqrt(1 + i % {per_run}), 6) AS loss,
            3e-4 AS lr FROM range({rows}) t(i)) TO '{path}' (HEADER)"""
    )


def sweep_runs(tmp: Path, run_counts: list[int], points: int) -> list[dict[str, Any]]:
    from store.importers import import_files

    rows = []
    for n_runs in run_counts:
        csv = tmp / f"runs-{n_runs}.csv"
        write_long_csv(csv, points, n_runs)
        store = Store(tmp / f"runs-{n_runs}")
        load = os.getloadavg()[0]
        import_wall, _ = timed(partial(import_files, store, [csv], project=PROJECT))
        csv.unlink()
        row: dict[str, Any] = {
            "runs": n_runs,
            "points": points,
            "load": load,
            "import": import_wall,
            "list_runs": median_wall(partial(queries.list_runs, store, PROJECT)),
            "version": median_wall(partial(queries.data_version, store, PROJECT)),
            "page": page_loads(store.root),
        }
        shutil.rmtree(store.root, ignore_errors=True)
        rows.append(row)
        print(row, flush=True)
    return rows


def fill_inbox(store: Store, count: int) -> int:
    """`count` point shards of 20 points, 5 per live run; returns the runs."""
    live_runs = max(1, count // 5)
    writers = [
        InboxWriter(store, PROJECT, f"live{i:05d}", flush_seconds=1e9) for i in range(live_runs)
    ]
    for k in range(5):
        for w in writers:
            w.log_many({"step": np.arange(k * 20, (k + 1) * 20), "loss": 2.0})
            w.flush()
    return live_runs


def sweep_pending(tmp: Path, shard_counts: list[int]) -> list[dict[str, Any]]:
    rows = []
    for count in shard_counts:
        store = Store(tmp / f"pending-{count}")
        store.ensure()
        live_runs = fill_inbox(store, count)
        load = os.getloadavg()[0]
        list_runs = partial(queries.list_runs, store, PROJECT)
        first, _ = timed(list_runs)
        row: dict[str, Any] = {
            "shards": count,
            "runs": live_runs,
            "load": load,
            "first_read": first,
            "list_runs": median_wall(list_runs),
            "version": median_wall(partial(queries.data_version, store, PROJECT)),
        }
        row["ingest"], row["ingest_cpu"] = timed(partial(ingest_inbox, store))
        shutil.rmtree(store.root, ignore_errors=True)
        rows.append(row)
        print(row, flush=True)
    return rows


def _page(row: dict[str, Any]) -> str:
    loads = row.get("page")
    return f"{statistics.median(loads):.2f} s" if loads else "—"


def render(
    points: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    pending: list[dict[str, Any]],
    command: str,
) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Store size sweep",
        "",
        f"Command: `{command}`  ",
        f"Date: {when}  ",
        f"Machine: {os.cpu_count()} CPU cores (shared with other jobs), "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, no GPU; "
        "`load` is the 1-minute load average when the step began.",
        "",
    ]
    if points:
        lines += [
            "## Points: the store grows 10 M points (100 runs) at a time",
            "",
            "| points in store | runs | load | ingest 10 M (wall / CPU) | live append "
            "(10 × 1,000 pts) | runs list | 1-run curve | 20-run curve | data version "
            "| Runs page | DB file |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['points'] / 1e6:.0f} M | {r['runs']:,} | {r['load']:.1f} | "
            f"{r['ingest']:.2f} / {r['ingest_cpu']:.2f} s | {r['append'] * 1e3:.0f} ms | "
            f"{r['list_runs'] * 1e3:.0f} ms | {r['curve1'] * 1e3:.0f} ms | "
            f"{r['curve20'] * 1e3:.0f} ms | {r['version'] * 1e3:.0f} ms | {_page(r)} | "
            f"{r['db_gib']:.2f} GiB |"
            for r in points
        ]
        lines.append("")
    if runs:
        lines += [
            "## Runs: 10 M points spread over more and more runs",
            "",
            "| runs | points | load | import | runs list | data version | Runs page |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['runs']:,} | {r['points'] / 1e6:.0f} M | {r['load']:.1f} | "
            f"{r['import']:.1f} s | {r['list_runs'] * 1e3:.0f} ms | "
            f"{r['version'] * 1e3:.0f} ms | {_page(r)} |"
            for r in runs
        ]
        lines.append("")
    if pending:
        lines += [
            "## Pending: point shards waiting in the inbox (20 points each, 5 per live run)",
            "",
            "| shards waiting | live runs | load | runs list, first read | runs list, warm "
            "| data version, warm | ingest them (wall / CPU) |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['shards']:,} | {r['runs']:,} | {r['load']:.1f} | "
            f"{r['first_read'] * 1e3:.0f} ms | {r['list_runs'] * 1e3:.0f} ms | "
            f"{r['version'] * 1e3:.0f} ms | {r['ingest']:.2f} / {r['ingest_cpu']:.2f} s |"
            for r in pending
        ]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sweep",
        nargs="+",
        choices=("points", "runs", "pending"),
        default=["points", "runs", "pending"],
    )
    parser.add_argument("--steps", type=int, default=10, help="10 M-point steps (points)")
    parser.add_argument("--browser-at", type=int, nargs="*", default=[1, 3, 10])
    parser.add_argument("--runs", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--runs-points", type=int, default=10_000_000)
    parser.add_argument("--pending", type=int, nargs="+", default=[160, 1000, 5000])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    points: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="scalinglab-scale-") as name:
        tmp = Path(name)
        if "points" in args.sweep:
            points = sweep_points(tmp, args.steps, set(args.browser_at))
            shutil.rmtree(tmp / "points", ignore_errors=True)
        if "runs" in args.sweep:
            runs = sweep_runs(tmp, args.runs, args.runs_points)
        if "pending" in args.sweep:
            pending = sweep_pending(tmp, args.pending)
    command = "python bench/scale_bench.py " + " ".join(sys.argv[1:])
    text = render(points, runs, pending, command.strip())
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
