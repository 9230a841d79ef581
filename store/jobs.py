"""Fitting jobs: a saved fit specification plus a schedule (cron text or 'on-new-data').

The store only keeps the rows; the scheduler (app) decides when to run them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from store.errors import BadInputError
from store.fits import as_json_text

if TYPE_CHECKING:
    import pandas as pd

    from store.core import Store

JOB_COLUMNS = (
    "id",
    "name",
    "project",
    "law",
    "selection",
    "options",
    "schedule",
    "paused",
    "status",
    "last_run_at",
    "next_run_at",
    "last_duration_s",
    "last_error",
    "last_data_version",
    "last_fit_id",
    "created_at",
)
# What a jobs list shows, in order (the CLI and the Jobs page).
SUMMARY_COLUMNS = (
    "id",
    "name",
    "project",
    "law",
    "schedule",
    "paused",
    "status",
    "next_run_at",
    "last_run_at",
    "last_duration_s",
    "last_fit_id",
    "last_error",
)
_UPDATABLE = frozenset(JOB_COLUMNS) - {"id", "created_at"}
_JSON = ("selection", "options")


def add_job(
    store: Store,
    *,
    name: str,
    project: str,
    law: str,
    selection: Any,
    options: Any,
    schedule: str,
) -> int:
    """Save a job and return its id."""
    if not name or not project or not law or not schedule:
        raise BadInputError("a job needs a name, a project, a law and a schedule")
    with store.transaction() as con:
        row = con.execute(
            "INSERT INTO jobs (name, project, law, selection, options, schedule) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            [name, project, law, as_json_text(selection), as_json_text(options), schedule],
        ).fetchone()
    assert row is not None
    return int(row[0])


def get_job(store: Store, job_id: int) -> dict[str, Any] | None:
    """One job as a dict, or None when there is no such job."""
    with store.connect(read_only=True) as con:
        row = con.execute(
            f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ?", [job_id]
        ).fetchone()
    return dict(zip(JOB_COLUMNS, row, strict=True)) if row else None


def list_jobs(store: Store, project: str | None = None) -> pd.DataFrame:
    """All jobs (optionally one project's), in id order."""
    where, params = ("WHERE project = ?", [project]) if project is not None else ("", [])
    with store.connect(read_only=True) as con:
        return con.execute(
            f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs {where} ORDER BY id", params
        ).df()


def update_job(store: Store, job_id: int, **fields: Any) -> None:
    """Set some columns of a job; BadInputError for unknown columns or a missing job."""
    unknown = sorted(set(fields) - _UPDATABLE)
    if unknown:
        raise BadInputError(f"cannot update job fields {unknown}; known: {sorted(_UPDATABLE)}")
    if not fields:
        return
    values = [as_json_text(v) if k in _JSON else v for k, v in fields.items()]
    sets = ", ".join(f"{k} = ?" for k in fields)
    with store.transaction() as con:
        row = con.execute(
            f"UPDATE jobs SET {sets} WHERE id = ? RETURNING id", [*values, job_id]
        ).fetchone()
        if row is None:
            raise BadInputError(f"no job with id {job_id}")


def delete_job(store: Store, job_id: int) -> None:
    """Remove a job (its fits stay); BadInputError when there is no such job."""
    with store.transaction() as con:
        row = con.execute("DELETE FROM jobs WHERE id = ? RETURNING id", [job_id]).fetchone()
        if row is None:
            raise BadInputError(f"no job with id {job_id}")
