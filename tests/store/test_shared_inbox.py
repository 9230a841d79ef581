"""Many trainers, one store: writers on other machines stream into one shared inbox folder
that the server reads and ingests (issue 16, item 4; docs/scale-out.md).

The writers are real processes with distinct host names ($SCALINGLAB_HOST), pointed at
the shared folder by $SCALINGLAB_INBOX and at a store folder that must never come into
being (a writer never opens the database). A reader process reads all along through the
dashboard's read path, the test process ingests all along, and one more writer is killed
in the middle of writing a shard.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from store import Store, paths, queries, shards
from store.inbox import InboxWriter
from store.ingest import ingest_inbox

REPO = Path(__file__).resolve().parents[2]
PROJECT = "shared"
HOSTS = ("node-a.cluster", "node-b.cluster", "node-c.cluster")
WRITERS = 6  # two per host
POINTS = 60  # per writer
SHARD_ROWS = 5
TIMEOUT_S = 120.0

# A trainer on another machine: only the inbox folder is shared with the server. It
# writes half its points, says so, waits until the server has ingested some of them,
# then writes the rest. Loss = writer index + step / 1000, so any value can be checked.
WRITER = """
import sys, time
from pathlib import Path
from store.inbox import InboxWriter
index, points, rows = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
half_marker, go_on = Path(sys.argv[4]), Path(sys.argv[5])
with InboxWriter(None, "shared", f"w{index}", facts={"params": 1000 + index},
                 flush_seconds=1e9) as w:
    for step in range(points):
        if step == points // 2:
            half_marker.touch()
            deadline = time.monotonic() + 120
            while not go_on.exists():
                if time.monotonic() > deadline:
                    sys.exit("timed out waiting to go on")
                time.sleep(0.01)
        w.log(step, loss=index + step / 1000)
        if step % rows == rows - 1:
            w.flush()
print(w.shards_written)
"""

# A writer killed by SIGKILL halfway through writing its second shard's bytes.
KILLED = """
import os, signal, sys
from store.inbox import InboxWriter
w = InboxWriter(None, "shared", "killed", flush_seconds=1e9)
for step in range(5):
    w.log(step, loss=9.0)
w.flush()
real_write = os.write
def write_half_then_die(fd, data):
    real_write(fd, bytes(data[: len(data) // 2]))
    os.kill(os.getpid(), signal.SIGKILL)
os.write = write_half_then_die
for step in range(5, 10):
    w.log(step, loss=9.0)
w.flush()
"""

# The dashboard's read path, again and again until told to stop. Every read must show
# whole shards only (point counts in multiples of a shard), no point twice, and the
# values the writers wrote; what it saw goes to stdout as JSON at the end.
READER = """
import json, sys, time
from pathlib import Path
from store import Store, queries
rows, stop, progress = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
store = Store(sys.argv[4])  # the inbox comes from $SCALINGLAB_INBOX
reads, problems, most = 0, [], 0
while not stop.exists() or reads < 3:
    runs = queries.list_runs(store, "shared")
    for r in runs.itertuples():
        if r.n_points % rows or r.n_points > r.last_step + 1:
            problems.append(f"runs list: {r.run} has {r.n_points} points up to {r.last_step}")
    frame = queries.points_frame(store, "shared")
    for run, part in frame.groupby("run"):
        if len(part) % rows or not part["step"].is_unique:
            problems.append(f"points: {run} has {len(part)} rows, steps unique: "
                            f"{part['step'].is_unique}")
        if run.startswith("w"):
            expected = int(run[1:]) + part["step"] / 1000
            if not (part["loss"] - expected).abs().lt(1e-12).all():
                problems.append(f"points: {run} has losses it was never given")
    most = max(most, len(frame))
    reads += 1
    tmp = progress.with_suffix(".tmp")
    tmp.write_text(str(reads))
    tmp.replace(progress)
    time.sleep(0.05)  # a page's reads come apart, and the ingest needs the lock between
print(json.dumps({"reads": reads, "problems": problems[:20], "most_points": most}))
"""


def _wait_for(
    condition: Callable[[], bool],
    what: str,
    while_waiting: Callable[[], object],
    needed: tuple[subprocess.Popen[str], ...] = (),
) -> None:
    """Poll `condition` (doing `while_waiting` between polls) until true or TIMEOUT_S;
    fail at once, with its error output, when one of the `needed` processes ended."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        for proc in needed:
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise AssertionError(f"{what}: a process ended ({proc.returncode}): {err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        while_waiting()
        time.sleep(0.5)  # an ingest per poll, not back to back: the reader gets its turns


def _start(script: str, args: list[object], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_many_writers_one_shared_inbox(tmp_path: Path) -> None:
    shared = tmp_path / "nfs" / "inbox"  # the shared folder: no store around it
    server = Store(tmp_path / "server", inbox=shared)
    server.ensure()
    remote_root = tmp_path / "trainer-home" / "store"  # what the trainers' $SCALINGLAB_STORE names
    env = {paths.INBOX_ENV_VAR: str(shared), paths.ENV_VAR: str(remote_root)}
    flags = tmp_path / "flags"
    flags.mkdir()
    go_on, stop, progress = flags / "go-on", flags / "stop", flags / "reads"

    reader = _start(READER, [SHARD_ROWS, stop, progress, server.root], env)
    writers = [
        _start(
            WRITER,
            [i, POINTS, SHARD_ROWS, flags / f"half-{i}", go_on],
            {**env, shards.HOST_ENV_VAR: HOSTS[i % len(HOSTS)]},
        )
        for i in range(WRITERS)
    ]
    killed = _start(KILLED, [], {**env, shards.HOST_ENV_VAR: "node-k"})
    reports = []

    def ingest() -> None:
        reports.append(ingest_inbox(server))

    def reads_done() -> int:
        return int(progress.read_text()) if progress.exists() else 0

    try:
        killed.communicate(timeout=TIMEOUT_S)
        assert killed.returncode == -signal.SIGKILL
        _wait_for(
            lambda: all((flags / f"half-{i}").exists() for i in range(WRITERS)),
            "every writer to write half its points",
            ingest,
            (*writers, reader),
        )
        ingest()  # the first halves (or what of them is left) go into the tables
        first = reads_done()
        _wait_for(lambda: reads_done() > first, "a read of half-ingested runs", ingest, (reader,))
        go_on.touch()
        _wait_for(lambda: all(w.poll() is not None for w in writers), "the writers", ingest)
        later = reads_done()
        _wait_for(lambda: reads_done() > later, "a read after the writers ended", ingest, (reader,))
        stop.touch()
        out, err = reader.communicate(timeout=TIMEOUT_S)
    finally:
        for proc in (*writers, reader, killed):
            if proc.poll() is None:
                proc.kill()
    assert reader.returncode == 0, err
    seen = json.loads(out)
    assert seen["problems"] == [] and seen["reads"] >= 3
    shards_written = 0
    for w in writers:
        w_out, w_err = w.communicate(timeout=TIMEOUT_S)
        assert w.returncode == 0, w_err
        shards_written += int(w_out.split()[-1])
    assert shards_written == WRITERS * POINTS // SHARD_ROWS
    assert sum(r.points for r in reports) > 0  # ingests ran while the writers wrote
    assert not remote_root.exists()  # no writer opened (or made) a database

    # The killed writer left its temporary: never listed, never read, swept once stale.
    temporaries = [p for p in shared.iterdir() if p.name.startswith(shards.TEMP_PREFIX)]
    assert len(temporaries) == 1 and "node_k" in temporaries[0].name
    assert shards.list_shards(shared, shards.POINTS_PREFIX) == []
    assert shards.list_shards(shared, shards.FACTS_PREFIX) == []
    stale = time.time() - 2 * shards.STALE_TEMP_S
    os.utime(temporaries[0], (stale, stale))
    final = ingest_inbox(server)
    assert final.swept == [temporaries[0].name] and not temporaries[0].exists()
    assert list(shared.iterdir()) == []

    # Every point exactly once, with its value; every run finished.
    frame = queries.points_frame(server, PROJECT)
    for i in range(WRITERS):
        part = frame[frame["run"] == f"w{i}"].sort_values("step")
        assert list(part["step"]) == list(range(POINTS))
        assert (part["loss"] - (i + part["step"] / 1000)).abs().max() < 1e-12
    assert list(frame.loc[frame["run"] == "killed", "step"]) == list(range(5))
    runs = queries.list_runs(server, PROJECT).set_index("run")
    assert (runs.loc[[f"w{i}" for i in range(WRITERS)], "status"] == "finished").all()
    assert runs.loc["w3", "params"] == 1003
    assert not (server.root / "quarantine").exists()
    # Each host's shards kept their own names: none was overwritten or merged.
    with server.connect(read_only=True) as con:
        names = [
            r[0]
            for r in con.execute(
                "SELECT name FROM ingested_shards WHERE kind = 'points'"
            ).fetchall()
        ]
    assert len(names) == shards_written + 1  # and the killed writer's one whole shard
    for host in HOSTS:
        assert sum(shards.host_tag(host) in name for name in names) == shards_written // 3


def test_names_differ_across_hosts_and_forks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two machines whose writers have the same pid, clock reading and sequence number
    still name their shards apart (host name); so do a parent and its forked child
    (a fresh random token), even on one host."""
    monkeypatch.setattr(shards, "_clock", lambda: 1_700_000_000_000_000_000)
    monkeypatch.setattr(shards, "_LAST_NS", 0)
    monkeypatch.setattr(os, "getpid", lambda: 4242)

    def name_on(host: str) -> str:
        monkeypatch.setenv(shards.HOST_ENV_VAR, host)
        monkeypatch.setattr(shards, "_LAST_NS", 0)
        monkeypatch.setattr(shards, "_SEQ", iter([7]))
        return shards.new_name(shards.POINTS_PREFIX)

    a, b = name_on("gpu-node-01"), name_on("gpu-node-02")
    assert a != b and "-gpu_node_01-4242-00000007-" in a
    odd = name_on("../we ird/host\nname")
    assert "/" not in odd and "\n" not in odd and " " not in odd
    assert odd.startswith(shards.POINTS_PREFIX) and odd.endswith(shards.SUFFIX)

    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report its token and leave at once
        os.write(write_end, shards._TOKEN.encode())
        os._exit(0)
    os.close(write_end)
    child_token = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(child, 0)
    assert len(child_token) == len(shards._TOKEN) and child_token != shards._TOKEN


def test_inbox_location_argument_then_environment_then_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(paths.INBOX_ENV_VAR, raising=False)
    assert Store(tmp_path / "s").inbox_dir == (tmp_path / "s" / "inbox").resolve()
    monkeypatch.setenv(paths.INBOX_ENV_VAR, str(tmp_path / "env-inbox"))
    assert Store(tmp_path / "s").inbox_dir == (tmp_path / "env-inbox").resolve()
    chosen = Store(tmp_path / "s", inbox=tmp_path / "arg-inbox")
    assert chosen.inbox_dir == (tmp_path / "arg-inbox").resolve()


def test_a_bad_shard_in_a_shared_inbox_goes_to_the_stores_quarantine(tmp_path: Path) -> None:
    """The quarantine is the server's (beside its database), not the shared folder's
    parent; a torn page behind a good footer is found by the read that meets it."""
    shared = tmp_path / "nfs" / "inbox"
    server = Store(tmp_path / "server", inbox=shared)
    with InboxWriter(server, PROJECT, "good") as w:
        w.log_many({"step": list(range(20)), "loss": 2.0})
    real = shards.list_shards(shared, shards.POINTS_PREFIX)[0]
    data = bytearray(real.read_bytes())
    data[4:40] = b"\xff" * 36
    bad = shared / real.name.replace(shards.POINTS_PREFIX, "pts-0", 1)  # sorts first
    bad.write_bytes(bytes(data))
    assert pq.read_metadata(bad).num_rows == 20  # its footer passes the check
    frame = queries.points_frame(server, PROJECT)
    assert len(frame) == 20 and not bad.exists()
    assert (server.root / "quarantine" / bad.name).exists()
    assert not (shared.parent / "quarantine").exists()
