"""`scalinglab serve`: the Streamlit dashboard plus one job scheduler, in one command.

The dashboard runs as a `streamlit run` child process (it owns the HTTP server and the
`/_stcore/health` endpoint); this process owns the scheduler thread, so fits never run
on the UI's script threads. Both talk to the same store through short-lived connections.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import IO, Any

from app.scheduler import Scheduler

APP_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = APP_DIR.parent
ENTRY = APP_DIR / "streamlit_app.py"


def config_dir() -> Path | None:
    """Where .streamlit/config.toml is: the source tree, else the working directory (the
    Docker image's WORKDIR when the package is installed into site-packages)."""
    for root in (PROJECT_ROOT, Path.cwd()):
        if (root / ".streamlit" / "config.toml").exists():
            return root
    return None


# Fallbacks for when the repo's .streamlit/config.toml is not beside the package
# (a wheel install): the settings the app relies on.
DEFAULT_FLAGS = {"server.maxUploadSize": "200", "browser.gatherUsageStats": "false"}


def streamlit_command(port: int, address: str | None = None) -> list[str]:
    """The child command line: headless, on `port`, optionally bound to `address`."""
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ENTRY),
        "--server.port",
        str(port),
        "--server.headless",
        "true",
    ]
    if config_dir() is None:
        for key, value in DEFAULT_FLAGS.items():
            cmd += [f"--{key}", value]
    if address:
        cmd += ["--server.address", address]
    return cmd


def health_url(port: int, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{port}/_stcore/health"


def wait_healthy(
    port: int, timeout: float = 60.0, proc: subprocess.Popen[Any] | None = None
) -> bool:
    """Poll the health endpoint until it answers 'ok' (False on timeout or child exit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(health_url(port), timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def start_dashboard(
    store_root: Path, port: int, address: str | None = None, scheduler: bool = True
) -> subprocess.Popen[bytes]:
    """Start the Streamlit child with the store path in its environment.

    SCALINGLAB_SCHEDULER tells the pages that a scheduler owns the jobs ("run now" then
    queues the job for it instead of running a second instance)."""
    env = {
        **os.environ,
        "SCALINGLAB_STORE": str(store_root),
        "SCALINGLAB_SCHEDULER": "1" if scheduler else "0",
    }
    # The child reads .streamlit/config.toml from its working directory.
    cwd = config_dir()
    return subprocess.Popen(streamlit_command(port, address), env=env, cwd=cwd)


def serve(
    store: Any,
    *,
    port: int = 8501,
    address: str | None = None,
    scheduler: bool = True,
    poll_seconds: float = 2.0,
    children: list[subprocess.Popen[Any]] | None = None,
) -> int:
    """Run the dashboard and the scheduler until interrupted; returns the exit code.

    `children` are extra processes (the demo sweep) to stop on the way out.
    """
    root = Path(store.root)
    lock = scheduler_lock(root) if scheduler else None
    if scheduler and lock is None:
        print(
            "another `scalinglab serve` runs this store's jobs; serving the dashboard only",
            flush=True,
        )
    proc = start_dashboard(root, port, address, scheduler)
    sched = Scheduler(store, poll_seconds=poll_seconds) if lock is not None else None
    if sched is not None:
        sched.start()
    stopping = False

    def _terminate(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        proc.terminate()

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if wait_healthy(port, proc=proc):
            shown = address if address and address != "0.0.0.0" else "localhost"
            print(f"scalinglab dashboard: http://{shown}:{port}  (store: {root})", flush=True)
        elif proc.poll() is not None:
            print(
                f"error: the dashboard did not start (is port {port} in use? try --port)",
                file=sys.stderr,
                flush=True,
            )
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        code = 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        for child in [proc, *(children or [])]:
            _stop_child(child)
        if sched is not None:
            sched.stop(wait=False)
        if lock is not None:
            lock.close()  # releases the flock
    return 0 if stopping else code


def scheduler_lock(root: Path) -> IO[bytes] | None:
    """An exclusive lock on `root/scheduler.lock`, held while this process runs the jobs,
    so two `serve` processes on one store never both run them. None when another holds it."""
    root.mkdir(parents=True, exist_ok=True)
    handle = (root / "scheduler.lock").open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _stop_child(child: subprocess.Popen[Any]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
