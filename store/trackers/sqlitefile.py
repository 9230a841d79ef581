"""A tracker's SQLite database, read without changing the user's folder.

Opening a database in WAL mode leaves `-wal`/`-shm` files beside it, even read-only; a
folder's bytes are an import's identity, so the file is opened `immutable` when it has
no write-ahead log with pages in it, else a private copy is read.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SQLITE_HEADER = b"SQLite format 3\x00"


def is_sqlite_file(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def wal_of(db: Path) -> Path | None:
    """The database's write-ahead log when it holds pages not yet checkpointed."""
    wal = db.with_name(db.name + "-wal")
    return wal if wal.is_file() and wal.stat().st_size > 0 else None


@contextmanager
def private_copy(db: Path) -> Iterator[Path]:
    """A copy of `db` (and its log) in a private temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="scalinglab-sqlite-") as tmp:
        copy = Path(tmp) / "copy.db"
        shutil.copyfile(db, copy)
        wal = wal_of(db)
        if wal is not None:
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        yield copy


@contextmanager
def reading(db: Path) -> Iterator[sqlite3.Connection]:
    """A connection that reads `db` as it is, leaving no file beside it."""
    if wal_of(db) is None:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?immutable=1", uri=True)
        try:
            yield con
        finally:
            con.close()
        return
    with private_copy(db) as copy:
        con = sqlite3.connect(copy)
        try:
            yield con
        finally:
            con.close()


def sqlite_tables(path: Path) -> dict[str, set[str]]:
    """{table: its columns} of a SQLite file; {} when it is not one."""
    if not path.is_file() or not is_sqlite_file(path):
        return {}
    try:
        with reading(path) as con:
            names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            return {n: {r[1] for r in con.execute(f'PRAGMA table_info("{n}")')} for n in names}
    except sqlite3.Error:
        return {}
