"""Inbox shard files: names, the Arrow schema of point shards, atomic writes, listing.

A shard is written under a hidden temporary name (`.tmp-...`, which no listing
matches), flushed to disk, and renamed into place in the same folder (the folder flushed
too), so a reader (or ingest) sees it whole or not at all, even after a power loss, and
on NFS too, where a rename within one directory is atomic on the server. A writer killed
mid-write leaves only its temporary, which `sweep_temporaries` removes later.

Names are unique across machines: they carry the host name ($SCALINGLAB_HOST when
set), the process id and a random token drawn again in every forked child. They sort by
creation time, and one process's names always sort in the order it wrote them (a run's
later facts win over its earlier ones).
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

POINTS_PREFIX = "pts-"
FACTS_PREFIX = "run-"
SUFFIX = ".parquet"
TEMP_PREFIX = ".tmp-"
# The host name in shard names; set it where machines share one (containers).
HOST_ENV_VAR = "SCALINGLAB_HOST"
# A temporary lives as long as one write; one this old belongs to a writer that died.
# Generous, because an NFS server's clock (which stamps it) may differ from ours.
STALE_TEMP_S = 15 * 60.0

_SEQ = itertools.count()
_TOKEN = uuid.uuid4().hex[:16]
_LAST_NS = 0
_clock = time.time_ns
_NAME_LOCK = threading.Lock()


def _new_token() -> None:
    """A forked child must not share its parent's token (its pid may repeat elsewhere)."""
    global _TOKEN
    _TOKEN = uuid.uuid4().hex[:16]


os.register_at_fork(after_in_child=_new_token)


@functools.cache
def host_tag(name: str) -> str:
    """A host name as it appears in shard names: letters, digits and `_`, at most 32."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")[:32] or "host"


def this_host() -> str:
    return host_tag(os.environ.get(HOST_ENV_VAR) or socket.gethostname())


def new_name(prefix: str) -> str:
    """A unique shard name that sorts by creation time (nanoseconds, then sequence).

    The wall clock may step back (NTP, a resumed VM); the time in a name never does
    within a process, so a run's `finished` facts never sort before its `running` ones.
    """
    global _LAST_NS
    with _NAME_LOCK:
        _LAST_NS = max(_clock(), _LAST_NS + 1)
        stamp = _LAST_NS
    return f"{prefix}{stamp:020d}-{this_host()}-{os.getpid()}-{next(_SEQ):08d}-{_TOKEN}{SUFFIX}"


@functools.cache
def points_schema() -> pa.Schema:
    import pyarrow as pa

    from store.schema import POINT_COLUMNS

    types = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "DOUBLE": pa.float64()}
    return pa.schema([(name, types[sql]) for name, sql in POINT_COLUMNS.items()])


@functools.cache
def facts_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("project", pa.string()), ("run", pa.string()), ("facts", pa.string())])


def write_atomic(
    inbox: Path, prefix: str, table: pa.Table, metadata: dict[str, bytes] | None = None
) -> Path:
    """Write `table` as a Parquet shard in `inbox`: temporary name, then rename.

    Uncompressed: shards are small and short-lived, and the writer is on the hot path.
    The file is built in memory and written with one call (fewer system calls than
    letting Parquet write piecewise). `metadata` goes into the file's footer (see
    `store.shardmeta`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    buffer = pa.BufferOutputStream()
    # No statistics (ingest reads the footer entry instead) and dictionaries only for
    # the repeated names: a third less time per shard than the defaults.
    text = [f.name for f in table.schema if pa.types.is_string(f.type)]
    pq.write_table(table, buffer, compression="none", write_statistics=False, use_dictionary=text)
    data = buffer.getvalue()
    name = new_name(prefix)
    tmp = inbox / f"{TEMP_PREFIX}{name}"
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:  # first shard of a fresh store
        inbox.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        # On disk before the rename: a power loss must not leave a named, torn shard.
        _sync_data(fd)
    finally:
        os.close(fd)
    final = inbox / name
    os.replace(tmp, final)
    fsync_folder(inbox)
    return final


# fdatasync skips the timestamps fsync would also write (the size is still flushed).
_sync_data = getattr(os, "fdatasync", os.fsync)


def fsync_folder(folder: Path) -> None:
    """Make a rename into `folder` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def list_shards(inbox: Path, prefix: str) -> list[Path]:
    """Completed shards of one kind, oldest first (temporary files are skipped)."""
    try:
        entries = os.scandir(inbox)
    except FileNotFoundError:
        return []
    with entries:
        names = [e.name for e in entries if e.name.startswith(prefix) and e.name.endswith(SUFFIX)]
    return [inbox / name for name in sorted(names)]


def sweep_temporaries(inbox: Path, older_than_s: float = STALE_TEMP_S) -> list[str]:
    """Remove temporaries older than `older_than_s` (writers that died mid-write);
    returns their names. A live writer's temporary is younger and is left alone."""
    cutoff = time.time() - older_than_s
    swept = []
    try:
        entries = os.scandir(inbox)
    except FileNotFoundError:
        return []
    with entries:
        for entry in entries:
            if not entry.name.startswith(TEMP_PREFIX):
                continue
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    swept.append(entry.name)
            except FileNotFoundError:  # renamed into place or swept by another process
                continue
    return swept
