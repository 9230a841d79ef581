"""`InboxWriter`: how a live run streams its points and facts into the store.

It never opens the database: it buffers rows and appends Parquet shards to
the store's inbox (`Store.inbox_dir`: `<store>/inbox/`, or a shared folder named by
`Store(inbox=...)` or $SCALINGLAB_INBOX, for trainers on other machines), which every read
already sees and `store.ingest.ingest_inbox` moves into the tables. A crash loses at most
the rows not yet flushed.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from store import shardmeta, shards
from store.errors import BadInputError
from store.schema import JSON_FACTS, POINT_COLUMNS, POINT_FIELDS, RUN_FACT_COLUMNS, RUN_STATUSES

if TYPE_CHECKING:
    import pyarrow as pa

    from store.core import Store

_ROW_FIELDS = tuple(c for c in POINT_FIELDS if c != "run")
_FLOAT_FIELDS = ("tokens", "flops", "lr", "loss", "sampling_ratio")


_INT64 = (-(2**63), 2**63 - 1)
# Facts that count something: never negative (what each counts, for the message).
_COUNTS = {
    "params": "parameters",
    "params_non_embedding": "parameters",
    "encoder_params": "parameters",
    "decoder_params": "parameters",
    "unique_tokens": "distinct training tokens",
}


def normalise_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """Check fact names and values; dicts for schedule/config/source become JSON text.

    Every value must fit its column (`store.schema.RUN_FACT_COLUMNS`), so that no
    shard can hold a fact that breaks the reads of every run: the writer refuses it,
    and a read or ingest quarantines a shard from another writer that holds one.
    """
    unknown = sorted(set(facts) - set(RUN_FACT_COLUMNS))
    if unknown:
        raise BadInputError(
            f"unknown run facts {unknown}; expected some of {sorted(RUN_FACT_COLUMNS)}"
        )
    out: dict[str, Any] = {}
    for key, value in facts.items():
        if key in JSON_FACTS and value is not None and not isinstance(value, str):
            value = json.dumps(value, sort_keys=True, default=str)
        out[key] = None if value is None else _fact_value(key, value)
    return out


def _fact_value(key: str, value: Any) -> Any:
    """`value` as its column's type (BIGINT, DOUBLE or VARCHAR), or BadInputError."""
    sql_type = RUN_FACT_COLUMNS[key]
    if sql_type == "VARCHAR":
        if not isinstance(value, str):
            raise BadInputError(f"run fact {key!r} must be text, got {value!r}")
        if key == "status" and value not in RUN_STATUSES:
            raise BadInputError(f"run status must be one of {RUN_STATUSES}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadInputError(f"run fact {key!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise BadInputError(f"run fact {key!r} must be finite, got {value!r}")
    if sql_type == "BIGINT":
        if int(value) != value:
            raise BadInputError(f"run fact {key!r} must be a whole number, got {value!r}")
        value = int(value)
        if not _INT64[0] <= value <= _INT64[1]:
            raise BadInputError(f"run fact {key!r} does not fit in 64 bits: {value}")
        if key in _COUNTS and value < 0:
            raise BadInputError(f"run fact {key!r} counts {_COUNTS[key]}: got {value}")
        return value
    return float(value)


class InboxWriter:
    """Buffer a run's points and write them as atomic Parquet shards in the inbox."""

    def __init__(
        self,
        store_or_root: Store | str | os.PathLike[str] | None,
        project: str,
        run: str,
        facts: dict[str, Any] | None = None,
        flush_seconds: float = 2.0,
        flush_rows: int = 10_000,
    ) -> None:
        from store.core import as_store

        if not project or not run:
            raise BadInputError("an InboxWriter needs a non-empty project and run name")
        self.store = as_store(store_or_root)
        self.project = project
        self.run = run
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self._rows: dict[str, list[Any]] = {name: [] for name in _ROW_FIELDS}
        self._tables: list[pa.Table] = []
        self._buffered = 0
        self._last_flush = time.monotonic()
        self._closed = False
        self.shards_written = 0
        self.set_facts(**{"status": "running", **(facts or {})})

    def log(
        self,
        step: int,
        *,
        split: str = "train",
        loss: float | None = None,
        lr: float | None = None,
        tokens: float | None = None,
        flops: float | None = None,
        family: str | None = None,
        sampling_ratio: float | None = None,
    ) -> None:
        """Buffer one point; flushes when `flush_rows` or `flush_seconds` is reached."""
        if int(step) != step or not 0 <= step <= _INT64[1]:
            raise BadInputError(f"step must be a non-negative integer below 2**63, got {step!r}")
        if loss is not None and loss < 0:  # NaN and inf pass: they become "no value"
            raise BadInputError(f"run {self.run!r}, step {step}: negative loss {loss!r}")
        if not split or not isinstance(split, str):
            raise BadInputError(f"run {self.run!r}: split must be non-empty text, got {split!r}")
        row = (split, int(step), tokens, flops, lr, loss, family, sampling_ratio)
        for name, value in zip(_ROW_FIELDS, row, strict=True):
            self._rows[name].append(value)
        self._buffered += 1
        self._maybe_flush()

    def log_many(self, columns: Any) -> None:
        """Buffer many points at once: a dict of columns (scalars broadcast) or a frame."""
        table = _to_points_table(columns, self.project, self.run)
        if table.num_rows:
            self._tables.append(table)
            self._buffered += table.num_rows
        self._maybe_flush()

    def set_facts(self, **facts: Any) -> None:
        """Record per-run facts (N, schedule, config, source, entropy, seed, ...) at once."""
        import pyarrow as pa

        clean = normalise_facts(facts)
        if not clean:
            return
        table = pa.table(
            {"project": [self.project], "run": [self.run], "facts": [json.dumps(clean)]},
            schema=shards.facts_schema(),
        )
        shards.write_atomic(self.store.inbox_dir, shards.FACTS_PREFIX, table)

    def flush(self) -> None:
        """Write everything buffered as one shard (no-op when nothing is buffered)."""
        import pyarrow as pa

        if self._rows["step"]:
            rows = dict(self._rows)
            n = len(rows["step"])
            rows["project"] = [self.project] * n
            rows["run"] = [self.run] * n
            self._tables.append(_clean_table(pa.table(rows), self.project, self.run))
            self._rows = {name: [] for name in _ROW_FIELDS}
        if self._tables:
            table = self._tables[0] if len(self._tables) == 1 else pa.concat_tables(self._tables)
            described = shardmeta.describe(table, self.project, self.run)
            metadata = {shardmeta.KEY: described} if described else None
            shards.write_atomic(self.store.inbox_dir, shards.POINTS_PREFIX, table, metadata)
            self.shards_written += 1
        self._tables = []
        self._buffered = 0
        self._last_flush = time.monotonic()

    def close(self, status: str = "finished") -> None:
        """Flush, then record the run's final status. Safe to call twice."""
        if self._closed:
            return
        self.flush()
        self.set_facts(status=status)
        self._closed = True

    def _maybe_flush(self) -> None:
        if self._buffered >= self.flush_rows or (
            self._buffered and time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()

    def __enter__(self) -> InboxWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(status="failed" if exc_type is not None else "finished")


def _to_points_table(columns: Any, project: str, run: str) -> pa.Table:
    """Turn a dict of columns or a pandas/polars frame into a points shard table.

    Numeric columns go through numpy with their final dtype, so no Arrow cast is needed;
    non-finite floats (a diverged run) become nulls.
    """
    import pyarrow as pa

    if hasattr(columns, "to_arrow"):  # polars
        columns = columns.to_arrow()
    elif hasattr(columns, "to_dict") and hasattr(columns, "columns"):  # pandas
        columns = pa.Table.from_pandas(columns, preserve_index=False)
    if isinstance(columns, pa.Table):
        columns = {name: columns.column(name) for name in columns.column_names}
    if "step" not in columns:
        raise BadInputError("log_many needs a 'step' column")
    unknown = sorted(set(columns) - set(_ROW_FIELDS))
    if unknown:
        raise BadInputError(f"log_many got unknown columns {unknown}; expected {_ROW_FIELDS}")
    n = len(columns["step"])
    schema = shards.points_schema()
    arrays = [_constant(project, n, pa.string()), _constant(run, n, pa.string())]
    for name in _ROW_FIELDS:
        value = columns.get(name, "train" if name == "split" else None)
        try:
            arrays.append(_column(name, value, n, schema.field(name).type))
        except (ValueError, TypeError, pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise BadInputError(f"run {run!r}: column {name!r} does not fit: {err}") from err
    _check_splits(columns.get("split", "train"), arrays[2], run)
    return pa.Table.from_arrays(arrays, schema=schema)


def _check_splits(given: Any, splits: pa.Array, run: str) -> None:
    """Every point names its split: a null or empty one could not be stored."""
    import pyarrow.compute as pc

    if isinstance(given, str):  # the usual case: one split for the whole batch
        bad = not given
    else:
        bad = bool(splits.null_count) or bool(len(splits) and pc.any(pc.equal(splits, "")).as_py())
    if bad:
        raise BadInputError(f"run {run!r}: every point needs a non-empty split name")


def _column(name: str, value: Any, n: int, arrow_type: pa.DataType) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    if value is None or isinstance(value, (str, int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        if name == "loss" and value is not None and value < 0:
            raise BadInputError(f"losses must not be negative, got {value!r}")
        return _constant(value, n, arrow_type)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if arrow_type == pa.string():
        return (
            value.cast(pa.string()) if isinstance(value, pa.Array) else pa.array(value, pa.string())
        )
    data = value.to_numpy(zero_copy_only=False) if isinstance(value, pa.Array) else value
    data = np.asarray(data, dtype=np.float64)
    if name == "step":
        if len(data) and (np.isnan(data).any() or data.min() < 0 or (data != np.floor(data)).any()):
            raise BadInputError("steps must be non-negative integers")
        return pa.array(data.astype(np.int64), pa.int64())
    if name == "loss" and (data < 0).any():  # NaN compares False: it becomes a null
        raise BadInputError(f"losses must not be negative, got {float(data[data < 0][0])!r}")
    finite = np.isfinite(data)
    return pa.array(data, pa.float64(), mask=None if finite.all() else ~finite)


def _constant(value: str | int | float | None, n: int, arrow_type: pa.DataType) -> pa.Array:
    """`n` copies of a scalar (or nulls). A run logs the same few every flush and Arrow
    arrays are immutable, so shard-sized ones are built once and shared."""
    if n <= _CACHED_ROWS:
        return _cached_constant(value, n, arrow_type)
    return _cached_constant.__wrapped__(value, n, arrow_type)


_CACHED_ROWS = 1 << 16


@functools.lru_cache(maxsize=256)
def _cached_constant(value: str | int | float | None, n: int, arrow_type: pa.DataType) -> pa.Array:
    import pyarrow as pa

    if value is None:
        return pa.nulls(n, arrow_type)
    return pa.repeat(pa.scalar(value, arrow_type), n)


def _clean_table(table: pa.Table, project: str, run: str) -> pa.Table:
    """Cast to the shard schema, check steps, and turn non-finite floats into nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = shards.points_schema()
    try:
        table = table.select(list(POINT_COLUMNS)).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise BadInputError(f"run {run!r}: points do not fit the curve schema: {err}") from err
    steps = table.column("step")
    if steps.null_count or (len(steps) and pc.min(steps).as_py() < 0):
        raise BadInputError(f"run {run!r}: steps must be non-negative integers")
    lowest = pc.min(table.column("loss")).as_py()
    if lowest is not None and lowest < 0:
        raise BadInputError(f"run {run!r}: losses must not be negative, got {lowest!r}")
    for name in _FLOAT_FIELDS:
        col = table.column(name)
        finite = pc.is_finite(col)
        if col.null_count != len(col) and not pc.all(pc.fill_null(finite, True)).as_py():
            # A diverged run logs NaN/inf: keep the step, record "no value".
            index = table.column_names.index(name)
            table = table.set_column(index, name, pc.if_else(finite, col, None))
    return table
