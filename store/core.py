"""`Store`: the store folder (DuckDB file, inbox shards, kept uploads) and its connections."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from store import db, paths, schema
from store.errors import StoreUnusableError

# Migrations are checked once per database file per process; writes from threads of one
# process are serialised so two of them never conflict inside DuckDB's MVCC.
_MIGRATED: set[Path] = set()
# Stores whose schema is newer than this code, with their version: read-only to us.
_NEWER: dict[Path, int] = {}
_WRITE_LOCKS: dict[Path, threading.RLock] = {}
_REGISTRY_LOCK = threading.Lock()


class Store:
    """A store folder: `scalinglab.duckdb`, `inbox/` (live-run shards), `uploads/`.

    `inbox` (else $SCALINGLAB_INBOX) puts the inbox elsewhere, e.g. a shared folder that
    trainers on other machines write into (docs/scale-out.md).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        inbox: str | os.PathLike[str] | None = None,
        lock_timeout_s: float = db.DEFAULT_LOCK_TIMEOUT_S,
    ) -> None:
        self.root = paths.resolve_root(root)
        self.db_path = self.root / paths.DB_NAME
        self.inbox_dir = paths.resolve_inbox(self.root, inbox)
        self.uploads_dir = self.root / paths.UPLOADS_DIR
        self.lock_timeout_s = lock_timeout_s

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def ensure(self) -> None:
        """Create the folders and bring the schema up to date (once per process).

        A store whose schema is newer than this code is left as it is: it can be read,
        and every write is refused (`StoreUnusableError`).
        """
        if self.db_path in _MIGRATED and self.db_path.exists():
            return
        self.check_root()
        try:
            self.inbox_dir.mkdir(parents=True, exist_ok=True)
            self.uploads_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreUnusableError(
                f"cannot create the store folder {self.root}: {err.strerror}; choose a "
                "folder you can write to with --store or $SCALINGLAB_STORE"
            ) from err
        with _REGISTRY_LOCK:
            if self.db_path.exists():
                version = self._version_read_only()
                if version > schema.CURRENT_VERSION:
                    _NEWER[self.db_path] = version
                if version >= schema.CURRENT_VERSION:
                    _MIGRATED.add(self.db_path)
                    return
        with (
            self._write_lock(),
            db.connection(self.db_path, read_only=False, timeout_s=self.lock_timeout_s) as con,
        ):
            schema.migrate(con)
        _MIGRATED.add(self.db_path)

    def check_root(self) -> None:
        """Refuse a store path that is a file (or lies under one)."""
        for folder in (self.root, *self.root.parents):
            if folder.exists():
                if not folder.is_dir():
                    what = (
                        "is a file"
                        if folder == self.root
                        else f"is not a folder ({folder} is a file)"
                    )
                    raise StoreUnusableError(
                        f"the store path {self.root} {what}; --store and $SCALINGLAB_STORE "
                        "name the store's folder"
                    )
                return

    def _version_read_only(self) -> int:
        with db.connection(self.db_path, read_only=True, timeout_s=self.lock_timeout_s) as con:
            return schema.current_version(con)

    def _refuse_newer(self) -> None:
        version = _NEWER.get(self.db_path)
        if version is not None:
            raise StoreUnusableError(
                f"the store {self.root} has schema version {version}, newer than this "
                f"scalinglab's ({schema.CURRENT_VERSION}): it can be read but not written; "
                "upgrade scalinglab to write to it"
            )

    def _write_lock(self) -> threading.RLock:
        with _REGISTRY_LOCK:
            return _WRITE_LOCKS.setdefault(self.db_path, threading.RLock())

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection (closed at the end of the block), retried on locks."""
        self.ensure()
        if read_only:
            with db.connection(self.db_path, read_only=True, timeout_s=self.lock_timeout_s) as con:
                yield con
            return
        self._refuse_newer()
        with (
            self._write_lock(),
            db.connection(self.db_path, read_only=False, timeout_s=self.lock_timeout_s) as con,
        ):
            yield con

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside one transaction: all of the block or none of it."""
        with self.connect(read_only=False) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def schema_version(self) -> int:
        """The schema version of the database file."""
        with self.connect(read_only=True) as con:
            return schema.current_version(con)


def as_store(store_or_root: Store | str | os.PathLike[str] | None) -> Store:
    """Accept a `Store` or a folder path wherever a store is expected."""
    return store_or_root if isinstance(store_or_root, Store) else Store(store_or_root)
