"""`scalinglab jobs ...`, `serve` and `demo` against real stores (serve/demo as real
subprocesses answering the health endpoint)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli as command
from app.server import demo
from tests.app.builders import build_store
from tests.e2e.harness import ROOT, free_port, wait_health

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(command, list(args))
    return result.exit_code, result.output


@pytest.fixture
def root(tmp_path: Path) -> Path:
    build_store(tmp_path / "store")
    return tmp_path / "store"


def test_jobs_add_list_pause_resume_delete(root: Path) -> None:
    code, out = cli(
        "jobs",
        "add",
        "--name",
        "nightly",
        "--project",
        "demo",
        "--law",
        "power_law",
        "--schedule",
        "0 3 * * *",
        "--x",
        "params",
        "--option",
        "bootstrap=20",
        "--store",
        str(root),
    )
    assert code == 0 and "job 1 added" in out
    code, out = cli("jobs", "list", "--json", "--store", str(root))
    listed = json.loads(out)
    assert listed[0]["name"] == "nightly" and listed[0]["schedule"] == "0 3 * * *"
    from store import Store, jobs

    job = jobs.get_job(Store(root), 1)
    assert json.loads(job["options"]) == {"x": "params", "bootstrap": 20}
    assert cli("jobs", "pause", "1", "--store", str(root))[0] == 0
    assert bool(jobs.get_job(Store(root), 1)["paused"])
    assert cli("jobs", "resume", "1", "--store", str(root))[0] == 0
    assert not bool(jobs.get_job(Store(root), 1)["paused"])
    code, out = cli("jobs", "list", "--store", str(root))
    assert code == 0 and "nightly" in out
    assert cli("jobs", "delete", "1", "--store", str(root))[0] == 0
    assert cli("jobs", "delete", "1", "--store", str(root))[0] == 2


def test_jobs_add_rejects_bad_input(root: Path) -> None:
    code, out = cli(
        "jobs",
        "add",
        "--name",
        "x",
        "--project",
        "demo",
        "--law",
        "power_law",
        "--schedule",
        "whenever",
        "--store",
        str(root),
    )
    assert code == 2 and "schedule 'whenever' has 1 field, a cron expression has 5" in out
    code, out = cli(
        "jobs", "add", "--name", "x", "--project", "demo", "--law", "nope", "--store", str(root)
    )
    assert code == 2 and "unknown law" in out


def test_jobs_run_saves_a_fit(root: Path) -> None:
    pytest.importorskip("fitting.persist")
    cli(
        "jobs",
        "add",
        "--name",
        "pl",
        "--project",
        "demo",
        "--law",
        "power_law",
        "--store",
        str(root),
    )
    code, out = cli("jobs", "run", "1", "--store", str(root))
    assert code == 0 and "fit 1 saved" in out


def test_demo_job_is_created_once_and_sweep_is_skipped_when_done(root: Path) -> None:
    from store import Store, jobs

    store = Store(root)
    first = demo.ensure_demo_job(store)
    assert demo.ensure_demo_job(store) == first
    job = jobs.get_job(store, first)
    assert job["schedule"] == "* * * * *" and job["law"] == "power_law"
    assert demo.demo_finished(store)  # the built store's demo runs are all finished
    proc, message = demo.start_sweep(store)
    assert proc is None and "already finished" in message
    cmd = demo.sweep_command(root, Path("trainers/sweeps/demo-cpu.toml"))
    assert cmd[:4] == [sys.executable, "-m", "app.cli", "sweep"] and "--project" in cmd


@pytest.mark.slow
def test_demo_serves_the_store_and_stops_cleanly(tmp_path: Path) -> None:
    import time

    port = free_port()
    store = tmp_path / "store"
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "demo",
                "--no-sweep",
                "--store",
                str(store),
                "--port",
                str(port),
                "--address",
                "127.0.0.1",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"scalinglab dashboard: http://127.0.0.1:{port}"
    try:
        wait_health(f"http://127.0.0.1:{port}", proc)
        deadline = time.monotonic() + 60  # serve prints the URL once it saw the health too
        while url not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        from store import Store, jobs

        assert list(jobs.list_jobs(Store(store))["name"]) == [demo.DEMO_JOB_NAME]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert url in text and "sweep skipped" in text
    assert "Did not auto detect external IP" not in text and "Traceback" not in text


def test_only_one_scheduler_per_store(tmp_path: Path) -> None:
    from app.server.serve import scheduler_lock

    first = scheduler_lock(tmp_path / "store")
    assert first is not None
    assert scheduler_lock(tmp_path / "store") is None
    first.close()
    again = scheduler_lock(tmp_path / "store")
    assert again is not None
    again.close()


def test_every_serve_and_jobs_option_has_help() -> None:
    import re

    expect = {
        ("serve",): ["--no-scheduler", "Serve the dashboard only", "--job-timeout"],
        ("jobs", "add"): [
            "A name for the job",
            "The project whose runs it fits",
            "The law to fit",
            "--include-running",
            "finished runs only",
            "five-field cron",
        ],
        ("jobs", "run"): ["JOB_ID", "The job's id"],
        ("jobs", "pause"): ["The job's id"],
        ("demo",): ["progress"],
    }
    for verb, texts in expect.items():
        result = runner.invoke(command, [*verb, "--help"], terminal_width=200)
        text = re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", result.output))
        assert result.exit_code == 0, verb
        for wanted in texts:
            assert wanted in text, (verb, wanted)
