"""`scalinglab demo`: the newcomer's first run.

Creates the `demo` project's scheduled fit (power law in N on the demo runs' final eval
losses, refit every minute), starts the short CPU sweep on a known-entropy source as a
subprocess unless its runs are already finished, and serves the dashboard while the
sweep fills the store live, printing its progress (runs finished, the live run's step
and loss) in the terminal. Never imports trainers: the sweep runs through the CLI, as a
child that dies with `serve` and is stopped with SIGINT, so a trainer closes its run.
"""

from __future__ import annotations

import importlib.util
import math
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from app.server import childproc

DEMO_PROJECT = "demo"
DEMO_JOB_NAME = "demo: power law in N, every minute"
DEMO_LAW = "power_law"
DEMO_SCHEDULE = "* * * * *"
DEMO_SELECTION = {"splits": ["eval"], "reduce": "final", "finished": True}
DEMO_OPTIONS = {"x": "params", "bootstrap": 100}
SWEEP_FILE = Path("trainers") / "sweeps" / "demo-cpu.toml"


def ensure_demo_job(store: Any) -> int:
    """The demo's scheduled fit, created once (its id either way)."""
    from store import jobs

    existing = jobs.list_jobs(store)
    if len(existing):
        same = existing[existing["name"] == DEMO_JOB_NAME]
        if len(same):
            return int(same["id"].iloc[0])
    from fitting.jobs import add_job

    return int(
        add_job(
            store,
            name=DEMO_JOB_NAME,
            project=DEMO_PROJECT,
            law=DEMO_LAW,
            selection=DEMO_SELECTION,
            options=DEMO_OPTIONS,
            schedule=DEMO_SCHEDULE,
        )
    )


def demo_finished(store: Any) -> bool:
    """True when the demo project has runs and none is still to do."""
    from store import queries

    runs = queries.list_runs(store, project=DEMO_PROJECT)
    return len(runs) > 0 and bool((runs["status"] == "finished").all())


def trainers_available() -> bool:
    """The trainers need torch; the slim image has neither (probed without importing)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "trainers"))


def sweep_file() -> Path | None:
    """The demo sweep's TOML, from the source tree or the installed trainers package."""
    spec = importlib.util.find_spec("trainers")
    roots = [Path(__file__).resolve().parents[2], Path.cwd()]
    if spec is not None and spec.submodule_search_locations:
        roots += [Path(p).parent for p in spec.submodule_search_locations]
    for root in roots:
        if (root / SWEEP_FILE).exists():
            return root / SWEEP_FILE
    return None


def sweep_command(store_root: Path, toml: Path) -> list[str]:
    """The CLI call that runs the demo sweep (resumable: finished runs are skipped)."""
    return [
        sys.executable,
        "-m",
        "app.cli",
        "sweep",
        str(toml),
        "--store",
        str(store_root),
        "--project",
        DEMO_PROJECT,
    ]


def start_sweep(store: Any) -> tuple[subprocess.Popen[bytes] | None, str]:
    """Start the demo sweep in the background when it is needed and possible.

    Returns the process (or None) and a line telling the user what happened.
    """
    if demo_finished(store):
        return None, "demo runs already finished; serving what is in the store"
    if not trainers_available():
        return None, "trainers not installed (no torch): serving what is in the store"
    toml = sweep_file()
    if toml is None:
        return None, f"{SWEEP_FILE} not found: serving what is in the store"
    root = Path(store.root)
    root.mkdir(parents=True, exist_ok=True)
    with (root / "demo-sweep.log").open("ab") as log:
        # SIGINT when serve dies: the trainer closes its run instead of leaving it 'running'.
        proc = childproc.start(
            sweep_command(root, toml),
            death_signal=signal.SIGINT,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
    return proc, f"demo sweep started (pid {proc.pid}); its log: {root / 'demo-sweep.log'}"


def sweep_size(toml: Path | None) -> tuple[int | None, int | None]:
    """(runs, steps per run) of a sweep file, None where it does not say."""
    if toml is None:
        return None, None
    try:
        spec = tomllib.loads(toml.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None, None
    grid = spec.get("grid") or {}
    runs = math.prod(len(v) if isinstance(v, list) else 1 for v in grid.values()) if grid else 0
    runs += len(spec.get("runs") or [])
    steps = (spec.get("base") or {}).get("steps")
    return (runs or None), (int(steps) if isinstance(steps, int) else None)


def progress_line(
    runs: pd.DataFrame, total_runs: int | None = None, total_steps: int | None = None
) -> str:
    """One line of the sweep's progress from the store's runs list: how many runs have
    finished and, for each live run, its step and latest loss."""
    status = runs["status"].astype(str) if len(runs) else pd.Series(dtype=str)
    finished = int((status == "finished").sum())
    line = f"demo sweep: {finished}/{total_runs or len(runs)} runs finished"
    of = f"/{total_steps}" if total_steps else ""
    for row in runs[status == "running"].to_dict("records") if len(runs) else []:
        step, loss = row.get("last_step"), row.get("last_loss")
        at = f"step {int(step)}{of}" if pd.notna(step) else "starting"
        line += f"; {row['run']}: {at}"
        if pd.notna(loss):
            line += f", loss {float(loss):.4f}"
    return line


def watch_progress(
    store: Any,
    proc: subprocess.Popen[Any],
    done: threading.Event,
    every_s: float = 5.0,
    out: Callable[[str], None] = lambda line: print(line, flush=True),
) -> threading.Thread:
    """Print the sweep's progress every `every_s` seconds when it changed, and one line
    when the sweep ends, until `done` is set (a daemon thread, returned started)."""
    from store import queries

    total_runs, total_steps = sweep_size(sweep_file())

    def loop() -> None:
        last = None
        while not done.is_set():
            ended = proc.poll() is not None
            try:
                line = progress_line(
                    queries.list_runs(store, project=DEMO_PROJECT), total_runs, total_steps
                )
            except Exception as err:  # a busy store: say so, try again next time
                line = f"demo sweep: progress unavailable ({err})"
            if line != last:
                out(line)
                last = line
            if ended:
                code = proc.returncode
                out(
                    "demo sweep finished"
                    if code == 0
                    else f"demo sweep stopped (exit code {code}); see demo-sweep.log in the store"
                )
                return
            done.wait(every_s)

    thread = threading.Thread(target=loop, name="demo-progress", daemon=True)
    thread.start()
    return thread
