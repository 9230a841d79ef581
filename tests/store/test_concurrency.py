"""Two processes writing at once (a live run with ingests, and an importer) lose nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from store import Store, queries
from store.ingest import ingest_inbox

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import sys
import numpy as np
from store import Store
from store.inbox import InboxWriter
from store.ingest import ingest_inbox
store = Store(sys.argv[1])
with InboxWriter(store, "live", "run0", facts={"params": 10}) as w:
    for k in range(20):
        w.log_many({"step": np.arange(k * 500, (k + 1) * 500), "loss": 1.0, "lr": 1e-3})
        w.flush()
        ingest_inbox(store)  # takes the write lock, like the scheduler does
from store import db
print("writer done", db.lock_waits)
"""

IMPORTER = """
import sys
from pathlib import Path
from store import Store
from store.importers import import_files
store = Store(sys.argv[1])
for path in sorted(Path(sys.argv[2]).glob("*.csv")):
    import_files(store, [path], project="imported")
from store import db
print("importer done", db.lock_waits)
"""


@pytest.mark.slow
def test_writer_and_importer_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.ensure()
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    for i in range(10):
        rows = "\n".join(f"r{i},{s},{2.0 + 1 / (s + 1)}" for s in range(400))
        (csv_dir / f"c{i:02d}.csv").write_text("run,step,loss\n" + rows + "\n")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(store.root), str(csv_dir)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script in (WRITER, IMPORTER)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "done" in out
        assert "lock" not in err.lower() and "Traceback" not in err
    waits = sum(int(out.split()[-1]) for out, _ in outputs)
    assert waits > 0  # they did contend for the lock, and the retries absorbed it
    ingest_inbox(store)
    live = queries.points_frame(store, "live")
    assert len(live) == 20 * 500 and live["step"].is_unique
    imported = queries.list_runs(store, "imported")
    assert len(imported) == 10 and imported["n_points"].eq(400).all()
    assert queries.list_runs(store, "live").iloc[0]["status"] == "finished"
