"""TensorBoard scalar exports: `Wall time, Step, Value`, one series per file.

TensorBoard names its downloads `run-<run>-tag-<tag>.csv`; the run and the tag are taken
from that name when it has this shape, else the run is the file's stem and the value is
the training loss. A tag that names an LR becomes the `lr` column.
"""

from __future__ import annotations

import re

import duckdb

from store.importers.aliases import canonical, is_eval_loss
from store.importers.csvread import read_typed
from store.importers.frames import create_points, create_runs, loss_expr
from store.importers.scan import ScannedFile
from store.importers.validate import check, check_numbers
from store.sql import quote_ident, quote_text

TB_NAME = re.compile(r"^run[-_](?P<run>.+?)[-_]tag[-_](?P<tag>.+)$")


def run_and_tag(stem: str, run_name: str) -> tuple[str, str]:
    match = TB_NAME.match(stem)
    if match is None:
        return run_name, "loss"
    return match["run"], match["tag"]


def parse_tensorboard(
    con: duckdb.DuckDBPyConnection,
    scanned: ScannedFile,
    mapping: dict[str, str],
    *,
    bits: bool,
    run_name: str,
) -> tuple[list[str], str]:
    """Load, validate and build `_points`/`_runs`; return (warnings, key column)."""
    del mapping
    wall, step_col, value = scanned.named
    run, tag = run_and_tag(scanned.path.stem, run_name)
    is_lr = canonical(tag) == "lr"
    split = "eval" if is_eval_loss(tag) else "train"
    used = {step_col: "step", value: "lr" if is_lr else "loss"}
    read_typed(con, scanned, {wall, value})
    check_numbers(con, scanned, used)
    check(con, scanned, value, "col IS NULL", "a number")
    loss = "NULL::DOUBLE" if is_lr else loss_expr(value, bits)
    lr = quote_ident(value) if is_lr else "NULL::DOUBLE"
    create_points(
        con,
        f"SELECT {quote_text(run)} AS run, '{split}' AS split, "
        f"CAST({quote_ident(step_col)} AS BIGINT) AS step, NULL::DOUBLE AS tokens, "
        f"NULL::DOUBLE AS flops, {lr} AS lr, {loss} AS loss, NULL::VARCHAR AS family, "
        "NULL::DOUBLE AS sampling_ratio, rowid AS _rec FROM _raw",
    )
    create_runs(con, scanned, quote_text(run), {})
    note = f"TensorBoard export: run {run!r}, tag {tag!r} as {'lr' if is_lr else 'loss'}"
    return [note], step_col
