"""`parse_file`: any accepted CSV to canonical frames, validated, without writing.

Parsing happens in a private in-memory DuckDB; the result is Arrow tables (cheap to
hand to the store) with pandas views for previews.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.errors import BadInputError
from store.importers.aliases import map_columns
from store.importers.detect import FORMATS, detect, is_wandb
from store.importers.frames import check_series_facts, dedupe_points
from store.importers.scan import ScannedFile, scan
from store.schema import POINT_FIELDS
from store.uniq import arrow_keys_unique, consecutive_series_unique

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa


@dataclass
class ParsedFile:
    """A validated file in the canonical schema (no project yet)."""

    path: Path
    format: str
    points_table: pa.Table
    runs_table: pa.Table
    series_table: pa.Table  # one row per (run, split): family, sampling_ratio
    mapping: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)  # columns `--map` could still name
    sha256: str = ""
    bits: bool = False
    facts: list[tuple[str, str, Any]] = field(default_factory=list)  # store.runfacts
    _frames: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def points(self) -> pd.DataFrame:
        """run, split, step, tokens, flops, lr, loss, family, sampling_ratio."""
        if "points" not in self._frames:
            self._frames["points"] = self.points_table.to_pandas()
        return self._frames["points"]

    @property
    def runs(self) -> pd.DataFrame:
        """run plus params, params_non_embedding, encoder/decoder params, family, ratio."""
        if "runs" not in self._frames:
            self._frames["runs"] = self.runs_table.to_pandas()
        return self._frames["runs"]

    @property
    def n_points(self) -> int:
        return self.points_table.num_rows

    @property
    def run_names(self) -> list[str]:
        return [str(r) for r in self.runs_table.column("run").to_pylist()]


def _parser(fmt: str) -> Any:
    from store.importers import long, table, tensorboard, wandb

    return {
        "long": long.parse_long,
        "table": table.parse_table,
        "wandb": wandb.parse_wandb,
        "tensorboard": tensorboard.parse_tensorboard,
    }[fmt]


def parse_file(
    path: str | Path,
    *,
    format: str = "auto",
    bits: bool = False,
    mapping: dict[str, str] | None = None,
    run_name: str | None = None,
    replicates: str = "refuse",
) -> ParsedFile:
    """Read, map and validate one file; raise BadInputError naming file/line/column.
    ``replicates="keep"`` keeps repeated runs (`store.importers.extras`)."""
    scanned = scan(Path(path))
    return parse_scanned(
        scanned,
        format=format,
        bits=bits,
        mapping=mapping,
        run_name=run_name,
        replicates=replicates,
    )


def parse_scanned(
    scanned: ScannedFile,
    *,
    format: str = "auto",
    bits: bool = False,
    mapping: dict[str, str] | None = None,
    run_name: str | None = None,
    replicates: str = "refuse",
) -> ParsedFile:
    """`parse_file` of a scanned file; a Parquet file's errors name rows, not lines."""
    try:
        return _parse_scanned(
            scanned,
            format=format,
            bits=bits,
            mapping=mapping,
            run_name=run_name,
            replicates=replicates,
        )
    except BadInputError as err:
        if scanned.kind == "csv":
            raise
        from store.importers.parquet import relocate

        raise relocate(err) from None


def _parse_scanned(
    scanned: ScannedFile,
    *,
    format: str,
    bits: bool,
    mapping: dict[str, str] | None,
    run_name: str | None,
    replicates: str,
) -> ParsedFile:
    import duckdb

    from store.importers.extras import REPLICATE_CHOICES, extra_facts, keep_replicates

    if replicates not in REPLICATE_CHOICES:
        raise BadInputError(f"replicates must be one of {REPLICATE_CHOICES}, not {replicates!r}")

    name = scanned.path.name
    if format not in ("auto", *FORMATS):
        raise BadInputError(f"unknown format {format!r}; expected auto or one of {FORMATS}")
    if format == "auto":
        # The W&B shape is told by the names as W&B writes them (a `--map` may send
        # one of its series to loss); the others by the names as the mapping renames them.
        renamed = [(mapping or {}).get(h, h) for h in scanned.named]
        fmt = "wandb" if is_wandb(scanned.named) else detect(renamed, name, scanned.header_lines)
    else:
        fmt = format
    try:
        col_map, warnings = map_columns(scanned.named, mapping)
    except BadInputError as err:
        raise BadInputError(err.message, file=name, line=scanned.header_lines) from None
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        extra, key_column = _parser(fmt)(
            con, scanned, col_map, bits=bits, run_name=run_name or scanned.path.stem
        )
        series = _series(con)
        select = f"SELECT {', '.join(POINT_FIELDS)} FROM _points"
        # In record order, as `_points` is (the cheap proof of unique keys relies on it).
        points = con.sql(select).to_arrow_table()
        facts: list[tuple[str, str, Any]] = []
        if not _keys_unique(points, series):
            if replicates == "keep":
                facts, more = keep_replicates(con, scanned, col_map)
                extra += more
            dedupe_points(con, scanned, key_column)
            points = con.sql(select).to_arrow_table()
            series = _series(con)
        per_series = {
            fact: src
            for src, fact in col_map.items()
            if fact in ("family", "sampling_ratio")
            and points.column(fact).null_count < points.num_rows
        }
        check_series_facts(con, scanned, per_series)
        if fmt in ("long", "table"):  # the file's other columns, as run facts
            kept, more = extra_facts(con, [h for h in scanned.header if h not in col_map])
            facts += kept
            extra += more
        runs = con.sql("SELECT * FROM _runs").to_arrow_table()
    finally:
        con.close()
    unused = [h for h in scanned.named if h not in col_map]
    if fmt in ("wandb", "tensorboard"):
        warnings = []
        unused = _unused_series(scanned.named, col_map) if fmt == "wandb" else []
    if bits:
        extra.append("loss converted from bits to nats (x ln 2)")
    for column in scanned.empty:
        extra.append(f"dropped column {scanned.header.index(column) + 1}: no name, no values")
    return ParsedFile(
        path=scanned.path,
        format=fmt,
        points_table=points,
        runs_table=runs,
        series_table=series.select(["run", "split", "family", "sampling_ratio"]),
        mapping=col_map,
        warnings=warnings + extra,
        unused=unused,
        sha256=scanned.sha256,
        bits=bits,
        facts=facts,
    )


def _unused_series(header: list[str], mapping: dict[str, str]) -> list[str]:
    from store.importers.wandb import unused_columns

    return unused_columns(header, mapping)


def _series(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """One row per (run, split) of `_points`: its facts, first and last record, size."""
    return con.sql(
        "SELECT run, split, max(family) AS family, max(sampling_ratio) AS sampling_ratio, "
        "min(_rec) AS first, max(_rec) AS last, count(*) AS n FROM _points "
        "GROUP BY run, split ORDER BY first"
    ).to_arrow_table()


def _keys_unique(points: pa.Table, series: pa.Table) -> bool:
    """The cheap proofs of `store.uniq` that no (run, split, step) repeats."""
    import numpy as np

    column = {name: np.asarray(series.column(name).to_numpy()) for name in ("first", "last", "n")}
    proven = consecutive_series_unique(
        points.column("step"), column["first"], column["last"], column["n"]
    )
    return proven or arrow_keys_unique(points)
