"""Run facts after import: N, D, family, a schedule or any named fact, kept per run.

Two kinds, one call:

- the canonical facts (`store.schema.RUN_FACT_COLUMNS`: params, family, schedule, seed,
  unique_tokens...) live in the `runs` table's own columns, checked as a writer's facts
  are (`store.inbox.normalise_facts`);
- every other name lives in the `run_facts` table (schema v4): a file's extra columns kept
  at import (Gadre et al.'s ``train_dataset``, Gordon et al.'s ``Lang``), a replicate's
  index, or ``tokens`` / ``flops`` (the run's training tokens and FLOPs: the D and C of
  its final point, for curves that log none). Values are numbers or texts, stored as JSON.

`fitting.data` joins them onto the fit frame, so ``--where`` and ``--group-by`` can use
them. `scalinglab runs set RUN name=value ...` and `scalinglab runs set --csv FACTS.csv`
(a table keyed by a ``run`` column) write them; `facts_frame` reads them back.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.errors import BadInputError
from store.schema import POINT_COLUMNS, RUN_FACT_COLUMNS, RUN_SUMMARY_COLUMNS

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from store.core import Store

# Names a fact cannot take: they are a point's own columns, or the run's bookkeeping.
RESERVED = frozenset(
    {*POINT_COLUMNS, *RUN_SUMMARY_COLUMNS, "project", "run", "created_at", "updated_at"}
) - {"tokens", "flops", *RUN_FACT_COLUMNS}
MAX_NAME = 200
# Canonical facts the long point frame (`store.queries.points_frame`) does not carry:
# `facts_frame` reads them from the runs' columns (inbox runs included), so fits and
# filters see them. A store written before schema v5 kept `unique_tokens` in `run_facts`:
# that value is read the same way where the column is empty.
LOOSE_FACTS = ("unique_tokens",)


def parse_value(text: str) -> float | int | str:
    """A fact's value from text: a number when it reads as one, else the text."""
    raw = text.strip()
    try:
        number = float(raw)
    except ValueError:
        return raw
    if not math.isfinite(number):
        return raw
    if number.is_integer() and "." not in raw and "e" not in raw.lower():
        return int(number)
    return number


def check_name(name: str) -> str:
    name = str(name).strip()
    if not name or len(name) > MAX_NAME:
        raise BadInputError(f"a run fact needs a name of 1 to {MAX_NAME} characters, got {name!r}")
    if name in RESERVED:
        raise BadInputError(
            f"{name!r} is a point's column, not a run fact (reserved: {', '.join(sorted(RESERVED))})"
        )
    return name


def split_facts(facts: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(canonical facts for the runs table, checked; other facts, JSON-ready)."""
    from store.inbox import normalise_facts

    canonical, other = {}, {}
    for name, value in facts.items():
        name = check_name(name)
        if isinstance(value, str):
            value = parse_value(value)
        if name in RUN_FACT_COLUMNS:
            if name == "status":
                raise BadInputError("a run's status is kept by the store, not set as a fact")
            if RUN_FACT_COLUMNS[name] == "VARCHAR" and not isinstance(value, str):
                value = str(value)
            canonical[name] = value
        else:
            if isinstance(value, float) and not math.isfinite(value):
                raise BadInputError(f"run fact {name!r} must be finite, got {value!r}")
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise BadInputError(f"run fact {name!r} must be a number or a text")
            if name in ("tokens", "flops") and not (isinstance(value, int | float) and value > 0):
                raise BadInputError(f"run fact {name!r} must be a positive number, got {value!r}")
            other[name] = value
    return normalise_facts(canonical), other


def write_extra(con: duckdb.DuckDBPyConnection, project: str, rows: list[tuple]) -> None:
    """Write (run, name, value) facts of runs that exist: a canonical name to its
    `runs` column, any other to `run_facts` (value JSON-encodable), replacing old ones."""
    canonical = [r for r in rows if r[1] in RUN_FACT_COLUMNS]
    for run, name, value in canonical:
        # The name is one of RUN_FACT_COLUMNS' (checked above), never user text.
        con.execute(
            f"UPDATE runs SET {name} = ?, updated_at = now() WHERE project = ? AND run = ?",
            [value, project, str(run)],
        )
        if name in LOOSE_FACTS:  # an older store's copy of it must not outlive the column's
            con.execute(
                "DELETE FROM run_facts WHERE project = ? AND run = ? AND name = ?",
                [project, str(run), name],
            )
    other = [r for r in rows if r[1] not in RUN_FACT_COLUMNS]
    if not other:
        return
    con.executemany(
        "INSERT INTO run_facts (project, run, name, value) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (project, run, name) DO UPDATE SET value = excluded.value",
        [[project, str(run), str(name), json.dumps(value)] for run, name, value in other],
    )


def set_facts(store: Store, project: str, facts: Mapping[str, Mapping[str, Any]]) -> int:
    """Set ``facts[run][name] = value`` on existing runs of ``project`` in one
    transaction; BadInputError (nothing written) for an unknown run or a bad fact.
    Returns the number of facts written."""
    checked = {str(run): split_facts(values) for run, values in facts.items()}
    if not checked:
        raise BadInputError("no facts to set")
    from store.queries import list_runs

    listed = list_runs(store, project=project)  # inbox runs not yet ingested included
    everywhere = set(listed["run"].astype(str)) if not listed.empty else set()
    with store.transaction() as con:
        stored = {
            r[0]
            for r in con.execute("SELECT run FROM runs WHERE project = ?", [project]).fetchall()
        }
        missing = [run for run in checked if run not in stored | everywhere]
        if missing:
            raise BadInputError(
                f"project {project!r} has no run {missing[0]!r}; facts are set on stored runs"
            )
        pending = [
            run for run, (canonical, _) in checked.items() if canonical and run not in stored
        ]
        if pending:
            raise BadInputError(
                f"run {pending[0]!r} is still in the inbox: `scalinglab ingest` it before "
                "setting its params, family or schedule"
            )
        count = 0
        for run, (canonical, other) in checked.items():
            facts = {**canonical, **other}
            write_extra(con, project, [(run, n, v) for n, v in facts.items()])
            count += len(facts)
    return count


def read_facts_csv(path: Path) -> dict[str, dict[str, Any]]:
    """A facts table keyed by a ``run`` column: {run: {name: value}}; blank cells are no
    fact. BadInputError names the file and line of a bad row."""
    if not path.is_file():
        raise BadInputError("no such file", file=str(path))
    with path.open(newline="", encoding="utf-8-sig") as fh:
        text = fh.read()
    lines = text.splitlines()
    skip = 0
    while skip < len(lines) and (not lines[skip].strip() or lines[skip].lstrip().startswith("#")):
        skip += 1
    body = lines[skip:]
    if not body:
        raise BadInputError("expected a header line with a 'run' column", file=path.name)
    delimiter = "\t" if body[0].count("\t") > body[0].count(",") else ","
    reader = csv.reader(body, delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    if "run" not in header:
        raise BadInputError(
            f"expected a 'run' column; found {header}", file=path.name, line=skip + 1
        )
    key = header.index("run")
    out: dict[str, dict[str, Any]] = {}
    for offset, row in enumerate(reader, start=skip + 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise BadInputError(
                f"expected {len(header)} fields as in the header, got {len(row)}",
                file=path.name,
                line=offset,
            )
        run = row[key].strip()
        if not run:
            raise BadInputError("the run name is empty", file=path.name, line=offset)
        values = {
            h: cell for h, cell in zip(header, row, strict=True) if h != "run" and cell.strip()
        }
        try:
            split_facts(values)
        except BadInputError as err:
            raise BadInputError(err.message, file=path.name, line=offset) from None
        out.setdefault(run, {}).update(values)
    if not out:
        raise BadInputError("the table holds no run", file=path.name)
    return out


def facts_frame(store: Store, project: str, runs: list[str] | None = None) -> pd.DataFrame:
    """One row per run with a non-canonical fact or one of `LOOSE_FACTS`: ``run`` and a
    column per name (a loose fact's column value wins over an older `run_facts` copy)."""
    import pandas as pd

    table: dict[str, dict[str, Any]] = {}
    with store.connect(read_only=True) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'run_facts'"
        ).fetchone()
        rows = []
        if exists and exists[0]:
            rows = con.execute(
                "SELECT run, name, value FROM run_facts WHERE project = ? "
                "AND (? IS NULL OR list_contains(?, run)) ORDER BY run, name",
                [project, runs, runs],
            ).fetchall()
    for run, name, value in rows:
        table.setdefault(run, {})[name] = json.loads(value) if value is not None else None
    for run, values in _loose_facts(store, project, runs).items():
        table.setdefault(run, {}).update(values)
    if not table:
        return pd.DataFrame({"run": []})
    return pd.DataFrame([{"run": run, **values} for run, values in table.items()])


def _loose_facts(store: Store, project: str, runs: list[str] | None) -> dict[str, dict[str, Any]]:
    """{run: {name: value}} of the `LOOSE_FACTS` set in the runs' columns."""
    import pandas as pd

    from store.queries import list_runs

    listed = list_runs(store, project=project)
    present = [name for name in LOOSE_FACTS if name in listed.columns]
    if listed.empty or not present:
        return {}
    if runs is not None:
        listed = listed[listed["run"].astype(str).isin([str(r) for r in runs])]
    out: dict[str, dict[str, Any]] = {}
    for record in listed[["run", *present]].to_dict("records"):
        values = {n: _plain(record[n]) for n in present if not pd.isna(record[n])}
        if values:
            out[str(record["run"])] = values
    return out


def _plain(value: Any) -> Any:
    """A frame cell as a plain number (whole numbers as int)."""
    number = float(value)
    return int(number) if number.is_integer() else number
