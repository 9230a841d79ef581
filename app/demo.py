"""`scalinglab demo`: the newcomer's first run.

Creates the `demo` project's scheduled fit (power law in N on the demo runs' final eval
losses, refit every minute), starts the short CPU sweep on a known-entropy source as a
subprocess unless its runs are already finished, and serves the dashboard while the
sweep fills the store live. Never imports trainers: the sweep runs through the CLI.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    return int(
        jobs.add_job(
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
    roots = [Path(__file__).resolve().parent.parent, Path.cwd()]
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
    log = (root / "demo-sweep.log").open("ab")
    proc = subprocess.Popen(
        sweep_command(root, toml),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return proc, f"demo sweep started (pid {proc.pid}); its log: {root / 'demo-sweep.log'}"
