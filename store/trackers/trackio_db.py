"""trackio projects: one SQLite database per project, `<TRACKIO_DIR>/<project>.db`.

trackio (`trackio.init/log/finish`) keeps its runs in `$TRACKIO_DIR` (default
`~/.cache/huggingface/trackio`): table `metrics` holds one row per `log()` call (`run_id`,
`run_name`, `step`, and the logged values as a JSON object, non-finite numbers written as
the strings `"NaN"`/`"Infinity"`), table `configs` each run's config (JSON). trackio's
own reader (`SQLiteStorage`) reads only the folder fixed when it is imported, so the
database is read here with SQLite itself, in trackio's order (`timestamp, id`), leaving
the folder as it was (`store.trackers.sqlitefile`). A `.db` file is one project, its runs named as logged; a folder is
every project in it, runs named `<project>/<run>`. Needs no package to read; writing
the test and bench data uses `pip install 'scalinglab[trackio]'`.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

from store.errors import BadInputError
from store.trackers.params import param_facts
from store.trackers.series import TrackerRun
from store.trackers.sqlitefile import reading, sqlite_tables, wal_of

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def is_project_db(path: Path) -> bool:
    tables = sqlite_tables(path)
    return {"run_name", "step", "metrics"} <= tables.get("metrics", set())


def project_dbs(path: Path) -> list[Path]:
    """The trackio databases at `path`: the file itself, or the `*.db` files in a folder."""
    if path.is_file():
        return [path] if is_project_db(path) else []
    if not path.is_dir():
        return []
    return sorted(p for p in path.glob("*.db") if p.is_file() and is_project_db(p))


def has_projects(path: Path) -> bool:
    return bool(project_dbs(path))


def source_files(path: Path) -> list[Path]:
    """Each database and its write-ahead log when that holds pages not yet checkpointed."""
    files = []
    for db in project_dbs(path):
        wal = wal_of(db)
        files += [db] if wal is None else [db, wal]
    return files


def read_runs(path: Path) -> list[TrackerRun]:
    """Every run of the project(s) at `path`, with its series and config facts."""
    dbs = project_dbs(path)
    if not dbs:
        raise BadInputError(
            "no trackio project database here (<project>.db with a metrics table)",
            file=str(path),
        )
    runs = []
    for db in dbs:
        prefix = f"{db.stem}/" if path.is_dir() else ""
        runs += _read_db(db, prefix)
    return runs


def _read_db(db: Path, prefix: str) -> list[TrackerRun]:
    label = str(db)
    with reading(db) as con:
        try:
            columns = {r[1] for r in con.execute("PRAGMA table_info(metrics)")}
            key = "run_id" if "run_id" in columns else "run_name"
            rows = con.execute(
                f"SELECT id, {key}, run_name, step, metrics FROM metrics ORDER BY timestamp, id"
            ).fetchall()
            configs = _configs(con, key)
        except sqlite3.Error as err:
            raise BadInputError(f"cannot read this trackio database: {err}", file=label) from None
    by_key: dict[Any, tuple[str, list[tuple[int, Any, Any]]]] = {}
    for row_id, run_key, run_name, step, blob in rows:
        by_key.setdefault(run_key, (str(run_name), []))[1].append((row_id, step, blob))
    if not by_key:
        raise BadInputError("a trackio project without logged metrics", file=label)
    names = [name for name, _ in by_key.values()]
    out = []
    for run_key, (name, logged) in by_key.items():
        if names.count(name) > 1:
            name = f"{name}-{str(run_key)[:8]}"
        run = TrackerRun(prefix + name, f"{label}, run {prefix + name!r}")
        _add_rows(run, logged)
        config = configs.get(run_key, {})
        try:
            run.facts.update(param_facts(config))
        except BadInputError as err:
            raise BadInputError(f"config: {err.message}", file=run.where) from None
        out.append(run)
    return out


def _configs(con: sqlite3.Connection, key: str) -> dict[Any, dict[str, Any]]:
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "configs" not in tables:
        return {}
    columns = {r[1] for r in con.execute("PRAGMA table_info(configs)")}
    key = key if key in columns else "run_name"
    out = {}
    for run_key, blob in con.execute(f"SELECT {key}, config FROM configs"):
        config = _json_object(blob)
        out[run_key] = config if config is not None else {}
    return out


def _add_rows(run: TrackerRun, logged: list[tuple[int, Any, Any]]) -> None:
    for row_id, step, blob in logged:
        values = _json_object(blob)
        if values is None:
            raise BadInputError(
                f"row id {row_id}: the logged values are no JSON object", file=run.where
            )
        if isinstance(step, bool) or not isinstance(step, int):
            raise BadInputError(f"row id {row_id}: step {step!r} is not a step", file=run.where)
        for metric, value in values.items():
            if isinstance(value, str):
                value = _NON_FINITE.get(value)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue  # text, media, histograms: not a curve
            run.add(str(metric), step, float(value))


def _json_object(blob: Any) -> dict[str, Any] | None:
    try:
        value = json.loads(blob)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None
