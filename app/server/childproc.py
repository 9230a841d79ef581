"""Child processes that die with their parent and stop cleanly.

`scalinglab serve` starts the dashboard, the demo's sweep and one process per fitting job.
Each child is started in a process group of its own, so a Ctrl-C in the terminal reaches
`serve` alone and `serve` stops its children in order (no child prints a
KeyboardInterrupt traceback of its own). On Linux each child also asks the kernel for a
signal when its parent dies (`prctl(PR_SET_PDEATHSIG)`), so a `kill -9` of `serve`
leaves no dashboard or fit holding the port or the store. The setting survives `exec`,
hence the launcher: `python -m app.server.childproc SIGNAL PARENT_PID -- COMMAND...`.

This module imports nothing heavy: it runs before every child.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(sig: int, parent_pid: int) -> bool:
    """Ask for `sig` when the parent dies (Linux); exit at once if it already has (the
    parent is no longer `parent_pid`, read before this call).

    Returns whether the kernel took the request (False off Linux). Note the kernel's rule:
    the signal comes when the parent *thread* that started this process exits, so a
    parent starts its children from a thread that outlives them."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os._exit(0)
    return armed


def guarded(command: Sequence[str], death_signal: int = signal.SIGTERM) -> list[str]:
    """`command` behind the launcher: it gets `death_signal` when this process dies."""
    return [
        sys.executable,
        "-m",
        "app.server.childproc",
        str(int(death_signal)),
        str(os.getpid()),
        "--",
        *command,
    ]


def start(
    command: Sequence[str], death_signal: int = signal.SIGTERM, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start `command` in its own process group, dying with this process."""
    return subprocess.Popen(guarded(command, death_signal), process_group=0, **popen)


def signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    """Send `sig` to the child's process group (the child alone if it has none)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def stop(
    proc: subprocess.Popen[Any],
    first: int = signal.SIGTERM,
    grace_s: float = 10.0,
) -> int | None:
    """Stop a child started by `start`: `first` to its group, then SIGKILL after
    `grace_s`; waits for it and returns its exit code (None if it would not die)."""
    if proc.poll() is None:
        signal_group(proc, first)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    # Whatever the child left in its group (its own workers) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.poll()


def wait_gone(pid: int, timeout_s: float, started: int | None = None) -> bool:
    """Whether process `pid` (started at `started`, see `start_time`) is gone (or a
    zombie) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not alive(pid, started):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot, /proc), None when unknown or gone:
    with the pid, it names one process even after pids wrap around."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int, started: int | None = None) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not count); with
    `started` (from `start_time`), whether that very process does, not a later one that
    got its pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return started is None  # no /proc: the signal test is all there is
    if fields[0] == "Z":
        return False
    return started is None or int(fields[19]) == started


def _main(argv: list[str]) -> None:
    """The launcher: arm the death signal, then become the command."""
    if len(argv) < 4 or argv[2] != "--":
        sys.exit("usage: python -m app.server.childproc SIGNAL PARENT_PID -- COMMAND...")
    die_with_parent(int(argv[0]), int(argv[1]))
    command = argv[3:]
    os.execvp(command[0], command)


if __name__ == "__main__":
    _main(sys.argv[1:])
