"""`scalinglab serve`: the Streamlit dashboard plus one job scheduler, in one command.

The dashboard runs as a `streamlit run` child process (it owns the HTTP server and the
`/_stcore/health` endpoint); this process owns the scheduler thread, so fits never run
on the UI's script threads. Both talk to the same store through short-lived connections.

Before it says anything `serve` checks that the port is free (`PortInUseError`, exit 2):
an answer on the health endpoint could otherwise come from another server. Its children
(`app.server.childproc`) live in process groups of their own and die with it, even on
`kill -9`; SIGINT, SIGTERM and SIGHUP stop everything in order, without a traceback.

Sign-in (`--auth FILE` or `$SCALINGLAB_AUTH`): the file is checked first
(`app.dashboard.authconfig`), then given to the child as its only secrets file
(`--secrets.files`), so `st.login` reads its `[auth]` and the pages its `[roles]`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from app.dashboard import authconfig, staging
from app.server import childproc
from app.server.scheduler import DEFAULT_JOB_TIMEOUT_S, Scheduler
from store.errors import ScalinglabError

APP_DIR = Path(__file__).resolve().parents[1]
PROJECT_ROOT = APP_DIR.parent
ENTRY = APP_DIR / "dashboard" / "streamlit_app.py"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class PortInUseError(ScalinglabError):
    """The dashboard's port is taken (or its address cannot be bound)."""


def config_dir() -> Path | None:
    """Where .streamlit/config.toml is: the source tree, else the working directory (the
    Docker image's WORKDIR when the package is installed into site-packages)."""
    for root in (PROJECT_ROOT, Path.cwd()):
        if (root / ".streamlit" / "config.toml").exists():
            return root
    return None


# Fallbacks for when the repo's .streamlit/config.toml is not beside the package
# (a wheel install): the settings the app relies on.
DEFAULT_FLAGS = {"server.maxUploadSize": "200"}
# Always: no browser, no usage statistics, and no Streamlit welcome banner. `serve`
# prints the one URL itself; the banner's External URL lookup needs the internet and,
# without it, prints "Did not auto detect external IP", which reads as an error.
# No traceback in the browser either, whatever config file is found (app/pageerrors.py
# shows a short message and an id instead).
ALWAYS_FLAGS = {
    "server.headless": "true",
    "browser.gatherUsageStats": "false",
    "logger.hideWelcomeMessage": "true",
    "client.showErrorDetails": "none",
}
# Without --host this machine alone can reach the dashboard (there is no sign-in by
# default): sharing it is a choice, `--host 0.0.0.0`.
DEFAULT_ADDRESS = "127.0.0.1"
WILDCARDS = ("0.0.0.0", "::", "")


def bound_address(address: str | None) -> str:
    """The address the dashboard listens on: `address`, else the loopback default."""
    return DEFAULT_ADDRESS if address is None else address


def address_line(address: str, port: int, root: Path) -> str:
    """What serve prints once the dashboard answers: the URL and which address is bound."""
    if address in WILDCARDS:
        where = f"bound to {address or '0.0.0.0'}: every network interface"
        host = "localhost"
    elif address.startswith("127.") or address == "::1":
        where = f"bound to {address}: this machine only; --host 0.0.0.0 shares it"
        host = address
    else:
        where = f"bound to {address}"
        host = address
    shown = f"[{host}]" if ":" in host else host
    return f"scalinglab dashboard: http://{shown}:{port}  ({where})  (store: {root})"


def streamlit_command(
    port: int, address: str | None = None, auth_file: Path | None = None
) -> list[str]:
    """The child command line: headless, on `port`, bound to `address` (default loopback;
    "" or 0.0.0.0 for every interface); `auth_file` as its secrets (sign-in on)."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(ENTRY), "--server.port", str(port)]
    flags = {**ALWAYS_FLAGS, **(DEFAULT_FLAGS if config_dir() is None else {})}
    for key, value in flags.items():
        cmd += [f"--{key}", value]
    bound = bound_address(address)
    if bound:
        cmd += ["--server.address", bound]
    if auth_file is not None:
        cmd += ["--secrets.files", str(auth_file)]
    return cmd


def check_auth(auth: str | os.PathLike[str] | None) -> Path | None:
    """The sign-in file (`auth`, else `$SCALINGLAB_AUTH`), checked; None: sign-in off.
    BadInputError (before anything starts) for a bad file or a missing Authlib."""
    path = authconfig.resolve_path(auth)
    if path is None:
        return None
    authconfig.load_file(path)
    authconfig.check_authlib()
    return path


def health_url(port: int, host: str = "127.0.0.1") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/_stcore/health"


def check_port(port: int, address: str | None = None) -> None:
    """PortInUseError unless the dashboard could listen on `address`:`port` now.

    Something answering there (another serve, an orphaned dashboard) or a bind that fails
    the way Streamlit's will (SO_REUSEADDR; the dual-stack wildcard when no address is
    given) means the port is taken."""
    host = address or ""
    probe = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    hint = "is another `scalinglab serve` or `make run` running? stop it, or pick another --port"
    with suppress(OSError), socket.create_connection((probe, port), timeout=1):
        raise PortInUseError(f"port {port} is in use ({hint})")
    for family, bind_host in _bind_targets(host):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            try:
                sock.bind((bind_host, port))
                return
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    raise PortInUseError(f"port {port} is in use ({hint})") from err
                if family == socket.AF_INET6 and host == "":
                    continue  # no IPv6 here: Streamlit falls back to 0.0.0.0 too
                shown = f"{bind_host}:{port}"
                raise PortInUseError(f"cannot listen on {shown}: {err.strerror}") from err


def _bind_targets(host: str) -> list[tuple[socket.AddressFamily, str]]:
    if host == "":
        dual = [(socket.AF_INET6, "::")] if socket.has_ipv6 else []
        return [*dual, (socket.AF_INET, "0.0.0.0")]
    return [(socket.AF_INET6 if ":" in host else socket.AF_INET, host)]


def wait_healthy(
    port: int,
    timeout: float = 60.0,
    proc: subprocess.Popen[Any] | None = None,
    stop: threading.Event | None = None,
    host: str = "127.0.0.1",
) -> bool:
    """Poll the health endpoint on `host` until it answers 'ok' (False on timeout, child
    exit or `stop`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (proc is not None and proc.poll() is not None) or (stop is not None and stop.is_set()):
            return False
        try:
            with urllib.request.urlopen(health_url(port, host), timeout=2) as resp:
                if resp.status == 200:
                    return proc is None or proc.poll() is None
        except OSError:
            pass
        time.sleep(0.3)
    return False


def start_dashboard(
    store_root: Path,
    port: int,
    address: str | None = None,
    scheduler: bool = True,
    auth_file: Path | None = None,
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
    command = streamlit_command(port, address, auth_file)
    return childproc.start(command, env=env, cwd=config_dir())


@contextmanager
def stop_signals(handler: Callable[[int], None]) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP call `handler` (no KeyboardInterrupt anywhere) while
    inside; the previous handlers come back on the way out. Only the main thread can
    set handlers: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda s, _f: handler(s)) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve(
    store: Any,
    *,
    port: int = 8501,
    address: str | None = None,
    scheduler: bool = True,
    poll_seconds: float = 2.0,
    job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S,
    children: list[subprocess.Popen[Any]] | None = None,
    stop: threading.Event | None = None,
    auth: str | os.PathLike[str] | None = None,
) -> int:
    """Run the dashboard and the scheduler until a stop signal (or `stop`); returns the
    exit code: 0 when stopped, else the dashboard's. PortInUseError before anything
    starts when the port is taken; BadInputError when the sign-in file (`auth`, else
    `$SCALINGLAB_AUTH`) is bad.

    `children` are extra processes (the demo sweep, started by `app.server.childproc.start`)
    to stop on the way out: SIGINT first, so a trainer closes its run.
    """
    address = bound_address(address)
    auth_file = check_auth(auth)
    check_port(port, address)
    root = Path(store.root)
    with suppress(Exception):  # uploads left staged by closed browser tabs
        staging.sweep_stale(root)
    stop = stop or threading.Event()
    with stop_signals(lambda _sig: stop.set()):
        lock = scheduler_lock(root) if scheduler else None
        if scheduler and lock is None:
            print(
                "another `scalinglab serve` runs this store's jobs; serving the dashboard only",
                flush=True,
            )
        sched = None
        proc = None
        try:
            if lock is not None:
                sched = Scheduler(store, poll_seconds=poll_seconds, job_timeout_s=job_timeout_s)
                sched.start()
            proc = start_dashboard(root, port, address, scheduler, auth_file)
            probe = "127.0.0.1" if address in WILDCARDS else address
            if wait_healthy(port, proc=proc, stop=stop, host=probe):
                print(address_line(address, port, root), flush=True)
                if auth_file is not None:
                    print(f"sign-in required (provider and roles: {auth_file})", flush=True)
            elif proc.poll() is not None and not stop.is_set():
                print(
                    f"error: the dashboard did not start (exit code {proc.returncode}; "
                    f"is port {port} in use? try --port)",
                    file=sys.stderr,
                    flush=True,
                )
            while not stop.is_set() and proc.poll() is None:
                stop.wait(0.2)
            code = 0 if stop.is_set() else (proc.returncode or 0)
        finally:
            shutdown(proc, sched, children or [])
            if lock is not None:
                lock.close()  # releases the flock
    return code


def shutdown(
    dashboard: subprocess.Popen[Any] | None,
    sched: Scheduler | None,
    children: list[subprocess.Popen[Any]],
) -> None:
    """Stop in order: the extra children (SIGINT: trainers close their runs), the
    scheduler (running fits stop, their jobs become 'interrupted'), the dashboard."""
    for child in children:
        with suppress(Exception):
            childproc.stop(child, first=signal.SIGINT, grace_s=30)
    if sched is not None:
        with suppress(Exception):
            sched.stop(wait=True)
    if dashboard is not None:
        childproc.stop(dashboard, first=signal.SIGTERM, grace_s=10)


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
