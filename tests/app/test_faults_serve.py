"""`scalinglab serve` and `demo` under faults, as real processes on real ports: a taken
port, `kill -9`, Ctrl-C during a fit, a bad cron string in the store, a sweep stopped
while it trains. Each checks the exit code, what was printed, the store's state, and
that no child process is left behind (through /proc, no psutil)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from app.server import childproc, demo
from app.server.serve import shutdown
from tests.app.builders import build_store
from tests.e2e.harness import ROOT, free_port, wait_health

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

TAKEN = "is in use (is another `scalinglab serve` or `make run` running? stop it, or pick another --port)"
# A fit that runs for minutes: it is still running whenever the test acts.
SLOW_OPTIONS = {"x": "params", "bootstrap": 10**6, "n_jobs": 1}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def descendants(pid: int) -> dict[int, int | None]:
    """Every live process below `pid`, from /proc's parent links, with its start time
    (pids wrap around quickly on a busy machine: the pair names one process)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    started = {p: childproc.start_time(p) for p in found}
    return {p: t for p, t in started.items() if t is not None and childproc.alive(p, t)}


def running(procs: dict[int, int | None]) -> list[int]:
    """Those of `procs` (from `descendants`) that still run."""
    return [p for p, t in procs.items() if childproc.alive(p, t)]


def group_of(pid: int) -> int:
    """The process group of `pid` (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return 0


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Serve:
    """A `scalinglab serve` in a session of its own (as a terminal would run it), its
    output in a file, and every process it started remembered for the clean-up."""

    def __init__(self, store: Path, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = store.parent / f"serve-{self.port}-{time.monotonic_ns()}.log"
        self.seen: dict[int, int | None] = {}
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cli("serve", "--store", str(store), "--port", str(self.port), *args),
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def children(self) -> dict[int, int | None]:
        found = descendants(self.proc.pid)
        self.seen |= found
        return found

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self) -> None:
        wait_health(f"http://127.0.0.1:{self.port}", self.proc, timeout=180)

    def cleanup(self) -> None:
        self.children()
        if self.proc.poll() is None:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        for pid in running(self.seen):
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def servers() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for server in started:
        server.cleanup()


def _slow_job(store: Any, name: str = "slow") -> int:
    from fitting.jobs import add_job

    return add_job(
        store, name=name, project="demo", law="power_law", selection={},
        options=SLOW_OPTIONS, schedule="on-new-data",
    )  # fmt: skip


def _status(root: Path, job_id: int) -> str:
    from store import Store, jobs

    return str(jobs.get_job(Store(root), job_id)["status"])


# A taken port ----------------------------------------------------------------------------


@pytest.mark.parametrize("address", [["--address", "127.0.0.1"], []], ids=["loopback", "all"])
def test_serve_refuses_a_taken_port_before_saying_anything(
    tmp_path: Path, address: list[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            cli("serve", "--store", str(tmp_path / "s"), "--port", str(port), *address),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert done.stdout == ""  # no "dashboard: http://..." line for somebody else's server
    assert done.stderr == f"error: port {port} {TAKEN}\n"
    assert not (tmp_path / "s" / "scheduler.lock").exists()  # nothing started


def test_a_second_demo_on_a_taken_port_starts_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    build_store(root)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            cli("demo", "--store", str(root), "--port", str(port), "--address", "127.0.0.1"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: port {port} {TAKEN}\n"
    from store import Store, jobs

    assert jobs.list_jobs(Store(root)).empty  # no demo job, and no second sweep either
    assert not (root / "demo-sweep.log").exists()


# kill -9 and Ctrl-C ----------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_of_serve_takes_the_dashboard_and_the_fit_with_it(
    tmp_path: Path, servers: list[Serve]
) -> None:
    root = tmp_path / "store"
    job_id = _slow_job(build_store(root))
    first = Serve(root, "--address", "127.0.0.1")
    servers.append(first)
    first.wait_healthy()
    wait_until(lambda: _status(root, job_id) == "running", 180, "the fit to start")
    children = first.children()
    dashboard = [p for p in children if "streamlit" in command_line(p)]
    # The fit: forked by the forkserver, the leader of a process group of its own.
    fit = [p for p in children if "forkserver" in command_line(p) and group_of(p) == p]
    assert len(dashboard) == 1 and len(fit) == 1, [command_line(p) for p in children]

    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=30)
    wait_until(lambda: not running(children), 20, "the orphans to go")

    # The port is free again: a restart serves its own dashboard, not an orphan's.
    second = Serve(root, "--address", "127.0.0.1", port=first.port)
    servers.append(second)
    second.wait_healthy()
    wait_until(lambda: "scalinglab dashboard:" in second.output(), 60, "the URL line")
    assert f"http://127.0.0.1:{first.port}" in second.output()
    assert "in use" not in second.output()


@pytest.mark.slow
def test_ctrl_c_during_a_fit_stops_everything_without_a_traceback(
    tmp_path: Path, servers: list[Serve]
) -> None:
    root = tmp_path / "store"
    job_id = _slow_job(build_store(root))
    server = Serve(root, "--address", "127.0.0.1")
    servers.append(server)
    server.wait_healthy()
    wait_until(lambda: _status(root, job_id) == "running", 180, "the fit to start")
    children = server.children()

    os.killpg(server.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
    assert server.proc.wait(timeout=60) == 0
    out = server.output()
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    wait_until(lambda: not running(children), 30, "the children")
    from store import Store, jobs

    job = jobs.get_job(Store(root), job_id)
    assert job["status"] == "interrupted"  # not left 'running'
    assert job["last_error"] == "stopped by the scheduler's shutdown"


@pytest.mark.slow
def test_a_bad_cron_in_the_store_neither_stops_serve_nor_the_other_jobs(
    tmp_path: Path, servers: list[Serve]
) -> None:
    from fitting.jobs import add_job
    from store import Store, jobs

    root = tmp_path / "store"
    store = build_store(root)
    with store.transaction() as con:  # written around add_job, which refuses it
        con.execute(
            "INSERT INTO jobs (name, project, law, selection, options, schedule) "
            "VALUES ('bad', 'demo', 'power_law', '{}', '{}', '0 0 * * * *')"
        )
    bad = int(jobs.list_jobs(store)["id"].iloc[0])
    good = add_job(
        store, name="good", project="demo", law="power_law", selection={},
        options={"x": "params"}, schedule="on-new-data",
    )  # fmt: skip
    server = Serve(root)  # no --address: Streamlit's banner would look up the external IP
    servers.append(server)
    server.wait_healthy()
    wait_until(lambda: _status(root, good) == "ok", 180, "the good job")
    job = jobs.get_job(Store(root), bad)
    assert job["status"] == "error"
    assert job["last_error"] == (
        "cannot schedule this job: schedule '0 0 * * * *' has 6 fields, a cron expression "
        "has 5: e.g. '*/5 * * * *' (minute hour day of month month day of week), or "
        "'on-new-data'"
    )
    assert server.proc.poll() is None
    children = server.children()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0
    out = server.output()
    assert f"scalinglab dashboard: http://127.0.0.1:{server.port}  (bound to 127.0.0.1" in out
    assert "Did not auto detect external IP" not in out and "Traceback" not in out, out
    wait_until(lambda: not running(children), 30, "the children")


# The demo's sweep ------------------------------------------------------------------------

TRAINER = """
import itertools, sys, time
from store.inbox import InboxWriter
with InboxWriter(sys.argv[1], "demo", "live", flush_rows=1) as writer:
    for step in itertools.count():
        writer.log(step, loss=5.0 / (step + 1))
        writer.flush()
        time.sleep(0.05)
"""


def _run_status(root: Path) -> str:
    from store import Store, queries

    runs = queries.list_runs(Store(root), project="demo")
    return str(runs.set_index("run").loc["live", "status"]) if "live" in set(runs["run"]) else ""


def _points(root: Path) -> int:
    from store import Store, queries

    runs = queries.list_runs(Store(root), project="demo")
    return int(runs.set_index("run").loc["live", "n_points"]) if len(runs) else 0


def test_stopping_serve_closes_the_sweeps_run_instead_of_leaving_it_running(
    tmp_path: Path,
) -> None:
    """serve stops the sweep with SIGINT first (it used to send SIGTERM, which killed a
    trainer before it could close its run: 'running' with nothing behind it)."""
    root = tmp_path / "store"
    proc = childproc.start(
        [sys.executable, "-c", TRAINER, str(root)], death_signal=signal.SIGINT, cwd=ROOT
    )
    try:
        wait_until(lambda: _points(root) > 0, 120, "the trainer's first points")
        assert _run_status(root) == "running"
        shutdown(None, None, [proc])
        assert proc.returncode is not None
    finally:
        childproc.stop(proc, grace_s=1)
    assert _run_status(root) == "failed"  # closed by the trainer, not left 'running'


PARENT = """
import signal, sys, time
from app.server import childproc
child = childproc.start([sys.executable, "-c", sys.argv[1], sys.argv[2]],
                        death_signal=signal.SIGINT)
print(child.pid, flush=True)
time.sleep(3600)
"""


def test_a_sweep_dies_with_its_parent_and_still_closes_its_run(tmp_path: Path) -> None:
    root = tmp_path / "store"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, TRAINER, str(root)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    child, started = 0, None
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        started = childproc.start_time(child)
        wait_until(lambda: _points(root) > 0, 120, "the trainer's first points")
        parent.kill()  # kill -9: no clean-up code runs in the parent
        parent.wait(timeout=30)
        assert childproc.wait_gone(child, 60, started)
    finally:
        parent.kill()
        if child and childproc.alive(child, started):
            with suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)
    assert _run_status(root) == "failed"


def test_demo_progress_lines_come_from_the_runs_list(tmp_path: Path) -> None:
    from store import queries

    store = build_store(tmp_path / "store", sizes=(1e5, 1e6, 1e7), running=("n10000000",))
    runs = queries.list_runs(store, project="demo")
    line = demo.progress_line(runs, total_runs=6, total_steps=400)
    loss = float(runs.set_index("run").loc["n10000000", "last_loss"])
    assert line == f"demo sweep: 2/6 runs finished; n10000000: step 40/400, loss {loss:.4f}"
    assert demo.progress_line(runs.iloc[:0]) == "demo sweep: 0/0 runs finished"
    assert demo.sweep_size(demo.sweep_file()) == (6, 400)

    import threading

    printed: list[str] = []
    done = threading.Event()
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(timeout=60)
    demo.watch_progress(store, ended, done, every_s=0.1, out=printed.append).join(timeout=60)
    assert printed == [
        f"demo sweep: 2/6 runs finished; n10000000: step 40/400, loss {loss:.4f}",
        "demo sweep finished",
    ]


@pytest.mark.slow
def test_ctrl_c_of_a_training_demo_leaves_no_run_running(tmp_path: Path) -> None:
    """`make run` end to end: the terminal shows the sweep's progress; Ctrl-C stops the
    trainer, the scheduler and the dashboard without a traceback, and no run stays
    'running' once every process has exited."""
    if not demo.trainers_available():
        pytest.skip("the trainers need torch")
    import re

    from store import Store, queries

    root, port = tmp_path / "store", free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cli("demo", "--store", str(root), "--port", str(port), "--address", "127.0.0.1"),
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    progress = re.compile(r"demo sweep: \d/6 runs finished; demo-cpu-\d: step \d+/400, loss \d")
    seen: dict[int, int | None] = {}
    try:
        deadline = time.monotonic() + 300
        url = f"scalinglab dashboard: http://127.0.0.1:{port}"
        while not (progress.search(log.read_text()) and url in log.read_text()):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            seen |= descendants(proc.pid)
            time.sleep(0.2)
        seen |= descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        for pid in running(seen):
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    out = log.read_text()
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert "Did not auto detect external IP" not in out
    assert not running(seen), [command_line(p) for p in running(seen)]
    runs = queries.list_runs(Store(root), project="demo")
    assert len(runs) > 0 and "running" not in set(runs["status"]), runs[["run", "status"]]
