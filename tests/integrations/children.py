"""A training in a child process, stopped at a known step: killed, crashed, interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from store import Store, queries
from tests.integrations.offline import OFFLINE

REPO = Path(__file__).resolve().parents[2]
STOP_AT = 10  # the step at which a child stops (blocks, raises or is interrupted)
MARK = "stopped at: "


def said(child: subprocess.Popen[str]) -> Any:
    """What the child printed when it stopped (other output is skipped)."""
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(MARK):
            return json.loads(line.removeprefix(MARK))
    raise AssertionError(f"the child ended ({child.wait()}) before it stopped")


def start(module: str, store: Store, mode: str) -> subprocess.Popen[str]:
    """`python -m tests.integrations.<module> STORE MODE`, its stdout readable."""
    return subprocess.Popen(
        [sys.executable, "-m", f"tests.integrations.{module}", str(store.root), mode],
        cwd=REPO,
        env={**os.environ, **OFFLINE, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def stop(mode: str, said: Any) -> None:
    """In the child, at STOP_AT: print `said` (JSON), then block, raise or get SIGINT."""
    print(MARK + json.dumps(said), flush=True)
    if mode == "block":  # a loop busy elsewhere: only the background flush writes
        sys.stdin.read()
    elif mode == "raise":
        raise RuntimeError("the training broke")
    else:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(60)  # the KeyboardInterrupt arrives here


def points(store: Store, project: str) -> list[tuple[str, int, float | None]]:
    """(split, step, loss) of a project, in order."""
    frame = queries.points_frame(store, project=project).sort_values(["split", "step"])
    return [
        (r.split, int(r.step), None if r.loss != r.loss else r.loss) for r in frame.itertuples()
    ]


def kill_when_stored(
    child: subprocess.Popen[str], store: Store, project: str, want: Callable[[Any], list]
) -> Any:
    """Wait for the child to stop, then (bounded) until the store holds the points
    `want(what it printed)`; SIGKILL the child and return what it printed."""
    try:
        printed = said(child)
        expected = want(printed)
        deadline = time.monotonic() + 120  # bounded: a loaded machine may be slow
        while points(store, project) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    return printed
