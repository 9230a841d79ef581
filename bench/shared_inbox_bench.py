"""Many trainers, one store: 32 writers stream into a shared inbox while the dashboard is used.

    .venv/bin/python bench/shared_inbox_bench.py                 # 32 writers, 60 s
    .venv/bin/python bench/shared_inbox_bench.py --writers 8 --duration 20 --no-browser

Each writer is a process of its own with its own host name ($SCALINGLAB_HOST), pointed
by $SCALINGLAB_INBOX at one shared folder outside the store and by $SCALINGLAB_STORE at
a folder that must never come into being: it logs `--rate` points a second through an
`InboxWriter` flushed every `--flush-seconds`. Meanwhile `scalinglab serve` runs on the
store (its scheduler ingests the shared inbox every 10 s, as it always does), a Chromium
page reloads the Runs page every `--reload-every` seconds, and a reader process reads
through the dashboard's read path (`data_version`, then `list_runs`) every
`--read-every` seconds, noting when each writer's points first appear.

Reported: the lag from a shard's flush to its points' appearance in a read (median and
maximum), the CPU share (CPU seconds / wall seconds) of the serve process (the ingest and
the scheduler's poll) and of the dashboard, the inbox's length while streaming, Runs page
load times, and the load average. Writes bench/results/shared_inbox.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROJECT = "live"
RESULTS = ROOT / "bench" / "results" / "shared_inbox.md"
READY = '[data-testid="stApp"][data-test-script-state="notRunning"]'
CHART = '[data-testid="stPlotlyChart"] .scatterlayer .trace'


# Roles run in child processes ---------------------------------------------------------


def run_writer(index: int, start_at: float, duration: float, rate: float, flush_s: float) -> None:
    """One trainer: `rate` points a second from `start_at` for `duration` seconds.

    Prints one JSON line: the points logged and, per flush, (wall time just after the
    shard was in place, the last step it holds)."""
    from store.inbox import InboxWriter

    writer = InboxWriter(
        None,
        PROJECT,
        f"live{index:02d}",
        facts={"params": 10_000 * (index + 1)},
        flush_seconds=flush_s,
    )
    flushes: list[tuple[float, int]] = []
    step = 0
    while (due := start_at + step / rate) < start_at + duration:
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        before = writer.shards_written
        writer.log(step, loss=2.0 + 5.0 / (1.0 + step) ** 0.5, tokens=step * 4096.0)
        if writer.shards_written != before:
            flushes.append((time.time(), step))
        step += 1
    before = writer.shards_written
    writer.flush()
    if writer.shards_written != before:
        flushes.append((time.time(), step - 1))
    writer.close()
    print(json.dumps({"run": writer.run, "points": step, "flushes": flushes}), flush=True)


def run_reader(store_root: str, stop: Path, every_s: float) -> None:
    """The dashboard's read path, every `every_s` seconds until `stop` exists. Prints
    one JSON line: per read, its start, its end and each run's last step."""
    from store import Store, queries

    store = Store(store_root)  # the inbox comes from $SCALINGLAB_INBOX
    reads: list[tuple[float, float, dict[str, int]]] = []
    while not stop.exists():
        started = time.time()
        queries.data_version(store, PROJECT)
        runs = queries.list_runs(store, PROJECT)
        live = runs[runs["run"].str.startswith("live")].dropna(subset=["last_step"])
        ended = time.time()
        reads.append(
            (started, ended, dict(zip(live["run"], live["last_step"].astype(int), strict=True)))
        )
        time.sleep(max(0.0, every_s - (ended - started)))
    print(json.dumps({"reads": reads}), flush=True)


# The orchestra ----------------------------------------------------------------------------


def build_base(root: Path, runs: int, points_per_run: int) -> float:
    """Finished runs already in the store (the page lists and plots them too)."""
    import numpy as np

    from store import Store
    from store.inbox import InboxWriter
    from store.ingest import ingest_inbox

    t0 = time.perf_counter()
    store = Store(root)
    steps = np.arange(points_per_run)
    for i in range(runs):
        with InboxWriter(store, PROJECT, f"base{i:04d}", facts={"params": 1000 * (i + 1)}) as w:
            w.log_many({"step": steps, "loss": 2.0 + 5.0 / np.sqrt(1.0 + steps), "lr": 3e-4})
    store.ensure()
    ingest_inbox(store)
    return time.perf_counter() - t0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def browse(url: str, every_s: float, stop: threading.Event, loads: list[float]) -> None:
    """Reload the Runs page every `every_s` seconds; keep each load's seconds."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.harness import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        first = True
        while not stop.is_set():
            t0 = time.perf_counter()
            page.goto(url + "/")
            page.wait_for_selector(READY, timeout=120_000)
            page.locator(CHART).first.wait_for(timeout=120_000)
            if not first:  # the first load warms the server
                loads.append(time.perf_counter() - t0)
            first = False
            stop.wait(max(0.0, every_s - (time.perf_counter() - t0)))
        browser.close()


def lags(writers: list[dict[str, Any]], reads: list[list[Any]]) -> list[float]:
    """Per flush: seconds from the flush to the end of the first read that shows it."""
    out = []
    for w in writers:
        for flushed_at, step in w["flushes"]:
            seen = next(
                (
                    end
                    for _, end, last in reads
                    if end >= flushed_at and last.get(w["run"], -1) >= step
                ),
                None,
            )
            if seen is not None:
                out.append(seen - flushed_at)
    return out


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def self_command(role: str, *args: object) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--role", role, *map(str, args)]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from store import Store, queries, shards
    from store.ingest import ingest_inbox
    from tests.e2e.harness import Server

    tmp = Path(tempfile.mkdtemp(prefix="scalinglab-shared-"))
    root, shared = tmp / "server" / "store", tmp / "nfs" / "inbox"
    trainer_store = tmp / "trainer-home" / "store"
    os.environ["SCALINGLAB_INBOX"] = str(shared)  # the server (and what it starts) too
    built_s = build_base(root, args.base_runs, args.base_points)
    print(f"base store: {args.base_runs} runs in {built_s:.1f} s", flush=True)
    out: dict[str, Any] = {"uptime_before": uptime(), "load_before": os.getloadavg()}
    server = Server(root)
    stop_reader, stop_browser = tmp / "stop-reader", threading.Event()
    loads: list[float] = []
    try:
        start_at = time.time() + args.startup
        writer_env = {**os.environ, "SCALINGLAB_STORE": str(trainer_store)}
        writers = [
            subprocess.Popen(
                self_command("writer", i, start_at, args.duration, args.rate, args.flush_seconds),
                env={**writer_env, "SCALINGLAB_HOST": f"trainer-{i:02d}"},
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(args.writers)
        ]
        reader = subprocess.Popen(
            self_command("reader", root, stop_reader, args.read_every),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        browser = None
        if not args.no_browser:
            browser = threading.Thread(
                target=browse, args=(server.url, args.reload_every, stop_browser, loads)
            )
            browser.start()
        while time.time() < start_at:
            time.sleep(0.1)
        serve_pid = server.proc.pid
        watched = {"serve": [serve_pid], "dashboard": children(serve_pid)}
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in watched.items()}
        wall0 = time.perf_counter()
        inbox_lengths = []
        while any(w.poll() is None for w in writers):
            inbox_lengths.append(len(shards.list_shards(shared, shards.POINTS_PREFIX)))
            time.sleep(1.0)
        wall = time.perf_counter() - wall0
        cpu = {k: sum(cpu_seconds(p) for p in v) - cpu0[k] for k, v in watched.items()}
        out["load_during"] = os.getloadavg()
        drained_t0 = time.perf_counter()
        while (
            shards.list_shards(shared, shards.POINTS_PREFIX)
            and time.perf_counter() - drained_t0 < 60
        ):
            time.sleep(0.2)
        out["drain_s"] = time.perf_counter() - drained_t0
        stop_reader.touch()
        stop_browser.set()
        if browser is not None:
            browser.join(timeout=120)
        results = [json.loads(w.communicate()[0].splitlines()[-1]) for w in writers]
        reads = json.loads(reader.communicate()[0].splitlines()[-1])["reads"]
    finally:
        stop_browser.set()
        server.stop()
    ingest_inbox(Store(root))  # whatever the last poll left
    frame = queries.list_runs(Store(root), PROJECT).set_index("run")
    logged = {r["run"]: r["points"] for r in results}
    stored = {run: int(frame.loc[run, "n_points"]) for run in logged}
    durations = [end - start for start, end, _ in reads]
    out.update(
        writers=args.writers,
        points=sum(logged.values()),
        shards=sum(len(r["flushes"]) for r in results),
        exact=stored == logged,
        trainer_store_made=trainer_store.exists(),
        lags=lags(results, reads),
        reads=len(reads),
        read_s=statistics.median(durations) if durations else float("nan"),
        read_max_s=max(durations, default=float("nan")),
        wall=wall,
        cpu=cpu,
        inbox_max=max(inbox_lengths, default=0),
        inbox_median=statistics.median(inbox_lengths) if inbox_lengths else 0,
        page_loads=loads,
        uptime_after=uptime(),
    )
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def render(r: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    lag = sorted(r["lags"])
    pct = lag[int(0.95 * (len(lag) - 1))] if lag else float("nan")
    loads = r["page_loads"]
    page = (
        f"{statistics.median(loads):.2f} s median, {max(loads):.2f} s max ({len(loads)} loads)"
        if loads
        else "not measured (--no-browser)"
    )
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        ("writers (processes, one host name each)", f"{r['writers']}"),
        ("points / shards streamed", f"{r['points']:,} / {r['shards']:,}"),
        ("every point stored exactly once", "yes" if r["exact"] else "**NO**"),
        ("a writer made a store (opened a database)", "yes" if r["trainer_store_made"] else "no"),
        (
            "lag, flush → visible in a read (median / 95th / max)",
            f"{statistics.median(lag):.2f} / {pct:.2f} / {max(lag):.2f} s ({len(lag)} flushes)"
            if lag
            else "—",
        ),
        (
            "one read (data_version + list_runs), median / max",
            f"{r['read_s'] * 1000:.0f} / {r['read_max_s'] * 1000:.0f} ms ({r['reads']} reads)",
        ),
        (
            "serve process CPU share (ingest every 10 s + scheduler poll)",
            f"{r['cpu']['serve'] / r['wall']:.1%} of one core "
            f"({r['cpu']['serve']:.1f} CPU s over {r['wall']:.0f} s)",
        ),
        (
            "dashboard (Streamlit) CPU share",
            f"{r['cpu']['dashboard'] / r['wall']:.1%} of one core",
        ),
        (
            "point shards waiting in the inbox (median / max, sampled every second)",
            f"{r['inbox_median']:.0f} / {r['inbox_max']}",
        ),
        ("inbox empty again after the writers stopped", f"{r['drain_s']:.1f} s"),
        (f"Runs page load (reloaded every {args.reload_every:g} s)", page),
    ]
    lines = [
        "# Shared inbox: many trainers, one store",
        "",
        f"Command: `{command}`  ",
        f"Date: {when}  ",
        f"Machine: {os.cpu_count()} CPU cores (shared), no GPU; `uptime` before: "
        f"`{r['uptime_before']}`; after: `{r['uptime_after']}`; 1-minute load while "
        f"streaming: {r['load_during'][0]:.1f}.",
        "",
        f"{r['writers']} writers × {args.rate:g} points/s, flushed every "
        f"{args.flush_seconds:g} s, for {args.duration:g} s, into one shared inbox folder "
        "(a local folder here: the same code path as an NFS mount, without the network).",
        "",
        "| measurement | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=32)
    parser.add_argument("--rate", type=float, default=10.0, help="points per second per writer")
    parser.add_argument("--flush-seconds", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--startup", type=float, default=30.0, help="seconds to start writers")
    parser.add_argument("--read-every", type=float, default=0.25)
    parser.add_argument("--reload-every", type=float, default=5.0)
    parser.add_argument("--base-runs", type=int, default=200)
    parser.add_argument("--base-points", type=int, default=5000, help="points per base run")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--role", choices=("writer", "reader"), help=argparse.SUPPRESS)
    parser.add_argument("role_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "writer":
        index, start_at, duration, rate, flush_s = args.role_args
        run_writer(int(index), float(start_at), float(duration), float(rate), float(flush_s))
        return
    if args.role == "reader":
        store_root, stop, every = args.role_args
        run_reader(store_root, Path(stop), float(every))
        return
    results = measure(args)
    command = "python bench/shared_inbox_bench.py " + " ".join(sys.argv[1:])
    text = render(results, args, command.strip())
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
