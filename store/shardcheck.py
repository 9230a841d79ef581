"""Checks every inbox shard once before any read or ingest uses it.

A point shard written by our `InboxWriter` carries its footer entry (`store.shardmeta`),
and the writer refused bad values before writing it, so reading its footer is all its
check costs. Any other point shard (no footer: another writer) is read whole: its
columns must be the point columns with fitting types, every point must name its project,
run and split, steps must be non-negative, losses non-negative, numbers finite. A facts
shard is small and read whole: each row's JSON must hold facts that fit their columns.

A shard that fails is moved to the quarantine (`store.quarantine`). A shard that passes
is remembered by name, size and modification time (shards never change once in place),
so a process checks each shard once.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store import shardmeta, shards
from store.errors import BadInputError
from store.quarantine import quarantine
from store.schema import POINT_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa

FactRow = tuple[str, str, str, dict[str, Any]]  # shard path, project, run, facts

# Verdicts on shards that passed, by (path, size, mtime): a footer's text (or None), or
# a facts shard's rows. Bounded: cleared when it grows past a store's worth of shards.
_PASSED: dict[tuple[str, int, int], Any] = {}
_PASSED_MAX = 200_000
_LOCK = threading.Lock()
# Shards read whole after a failed read and found fine (so not read whole again).
_READ_WHOLE: set[tuple[str, int, int]] = set()
_SERVED = threading.local()
# The store each inbox folder was last checked for: an inbox may live outside its store
# (a shared folder), and a shard found bad later goes to that store's quarantine.
_STORE_OF_INBOX: dict[Path, Path] = {}
_NAMES = ("project", "run", "split")
_NUMBERS = ("tokens", "flops", "lr", "loss", "sampling_ratio")


class BadShard(Exception):
    """A shard that cannot be used; `reason` says why in words."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _Gone(Exception):
    """The shard disappeared (ingested or quarantined by another process) meanwhile."""


def checked_points(root: Path, files: Iterable[Path]) -> dict[Path, str | None]:
    """The usable point shards among `files` (order kept), each with its footer entry
    (None when it has none); the others are quarantined."""
    out: dict[Path, str | None] = {}
    for path in files:
        _STORE_OF_INBOX[path.parent] = root
        try:
            out[path] = _verdict(path, _check_points)
        except _Gone:
            continue
        except BadShard as bad:
            quarantine(root, path, bad.reason)
    return out


def checked_facts(root: Path, files: Iterable[Path]) -> dict[Path, list[FactRow]]:
    """The usable facts shards among `files` (order kept) with their rows; the others
    are quarantined. Each row's facts are already normalised to their column types."""
    rows: dict[Path, list[FactRow]] = {}
    for path in files:
        _STORE_OF_INBOX[path.parent] = root
        try:
            rows[path] = _verdict(path, _check_facts)
        except _Gone:
            continue
        except BadShard as bad:
            quarantine(root, path, bad.reason)
    return rows


def recheck(paths: Iterable[str | Path]) -> int:
    """Read the given shards whole (a read failed on one of them) and quarantine each
    that fails; returns how many were quarantined. Used when a footer was fine but a
    page is not. A shard read whole once is not read whole again."""
    moved = 0
    for name in paths:
        path = Path(name)
        try:
            st = os.stat(path)
            key = (str(path), st.st_size, st.st_mtime_ns)
            if key in _READ_WHOLE:
                continue
            check = (
                _check_facts if path.name.startswith(shards.FACTS_PREFIX) else _deep_check_points
            )
            check(path)
            _READ_WHOLE.add(key)
        except (_Gone, FileNotFoundError):
            continue
        except BadShard as bad:
            _forget(path)
            root = _STORE_OF_INBOX.get(path.parent, path.parent.parent)
            moved += quarantine(root, path, bad.reason)
    return moved


def note_served(paths: list[str]) -> None:
    """Remember the shards this thread's current read uses (see `last_served`)."""
    _SERVED.paths = paths


def last_served() -> list[str]:
    """The shards the last read of this thread used: to recheck when it failed."""
    return list(getattr(_SERVED, "paths", []))


# Any folder: the inbox may be a shared one outside the store.
_SHARD_IN_MESSAGE = re.compile(r"""["']([^"']*/(?:pts|run)-[^"'/]*\.parquet)["']""")


def shards_named_in(message: str) -> list[str]:
    """Inbox shard paths quoted in a DuckDB error message."""
    return _SHARD_IN_MESSAGE.findall(message)


def _verdict(path: Path, check: Any) -> Any:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _Gone() from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key in _PASSED:
            return _PASSED[key]
    value = check(path)
    with _LOCK:
        if len(_PASSED) >= _PASSED_MAX:
            _PASSED.clear()
        _PASSED[key] = value
    return value


def _forget(path: Path) -> None:
    with _LOCK:
        for key in [k for k in _PASSED if k[0] == str(path)]:
            del _PASSED[key]


def _check_points(path: Path) -> str | None:
    """The footer entry of one of our writer's shards, else a full check (None)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
    except FileNotFoundError:
        raise _Gone() from None
    except (OSError, pa.ArrowException) as err:
        raise BadShard(f"not a readable Parquet file ({_first_line(err)})") from None
    footer = (meta.metadata or {}).get(shardmeta.KEY.encode())
    if footer is not None and _footer_ok(footer):
        return footer.decode()
    _deep_check_points(path)
    return None


def _footer_ok(footer: bytes) -> bool:
    try:
        meta = json.loads(footer)
    except ValueError:
        return False
    return isinstance(meta, dict) and meta.get("v") == shardmeta.VERSION and "series" in meta


def _deep_check_points(path: Path) -> None:
    import pyarrow.compute as pc

    table = _read(path)
    _check_columns(table.schema, POINT_COLUMNS)
    for name in _NAMES:
        _check_names(table, name)
    steps = table.column("step")
    if steps.null_count:
        raise BadShard("column 'step' has missing values")
    lowest = pc.min(steps).as_py()
    if lowest is not None and lowest < 0:
        raise BadShard(f"column 'step' has a negative step ({lowest})")
    for name in _NUMBERS:
        column = table.column(name)
        if column.null_count == len(column):
            continue
        if not pc.all(pc.is_finite(pc.drop_null(column))).as_py():
            raise BadShard(f"column {name!r} has NaN or infinite values (write nulls instead)")
    lowest = pc.min(table.column("loss")).as_py()
    if lowest is not None and lowest < 0:
        raise BadShard(f"column 'loss' has a negative loss ({lowest})")


def _check_facts(path: Path) -> list[FactRow]:
    from store.inbox import normalise_facts

    table = _read(path)
    _check_columns(table.schema, {"project": "VARCHAR", "run": "VARCHAR", "facts": "VARCHAR"})
    for name in ("project", "run"):
        _check_names(table, name)
    rows: list[FactRow] = []
    columns = [table.column(name).to_pylist() for name in ("project", "run", "facts")]
    for i, (project, run, text) in enumerate(zip(*columns, strict=True)):
        try:
            facts = json.loads(text) if text is not None else None
        except ValueError as err:
            raise BadShard(f"row {i + 1}: the facts are not valid JSON ({err})") from None
        if not isinstance(facts, dict):
            raise BadShard(f"row {i + 1}: the facts are not a JSON object")
        try:
            rows.append((str(path), project, run, normalise_facts(facts)))
        except BadInputError as err:
            raise BadShard(f"row {i + 1}: {err}") from None
    return rows


def _read(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise _Gone() from None
    except (OSError, pa.ArrowException) as err:
        raise BadShard(f"not a readable Parquet file ({_first_line(err)})") from None


def _check_columns(schema: pa.Schema, expected: dict[str, str]) -> None:
    """Exactly the expected columns, each of a type DuckDB reads as the column's type."""
    names = set(schema.names)
    missing = [name for name in expected if name not in names]
    if missing:
        raise BadShard(f"missing columns {missing}; a shard has exactly {list(expected)}")
    extra = sorted(names - set(expected))
    if extra:
        raise BadShard(f"unexpected columns {extra}; a shard has exactly {list(expected)}")
    for name, sql_type in expected.items():
        arrow_type = schema.field(name).type
        if not _fits(arrow_type, sql_type):
            wanted = {"VARCHAR": "string", "BIGINT": "int64", "DOUBLE": "double"}[sql_type]
            raise BadShard(f"column {name!r} is {arrow_type}, expected {wanted}")


def _fits(arrow_type: pa.DataType, sql_type: str) -> bool:
    """Exactly the column's type as DuckDB reads it. A narrower type (int32, float32) or
    Arrow's null type would make DuckDB cast every later shard of a batch to it."""
    import pyarrow as pa

    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if sql_type == "VARCHAR":
        return pa.types.is_string(t) or pa.types.is_large_string(t)
    return t == (pa.int64() if sql_type == "BIGINT" else pa.float64())


def _check_names(table: pa.Table, name: str) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if column.null_count or (len(column) and pc.any(pc.equal(column, "")).as_py()):
        raise BadShard(f"column {name!r} has missing or empty names")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
