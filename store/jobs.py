"""Fitting jobs: a saved fit specification plus a schedule (cron text or 'on-new-data').

The store keeps the rows and refuses a job it could never run on its schedule: every
writer (the CLI, the Jobs page, the demo, the Python API) goes through `add_job` and
`update_job`, which validate the schedule, the selection and the shape of the options.
Which option names a law takes is the fitting package's to say (`fitting.jobs.add_job`
checks them before calling `add_job`). The scheduler (app) decides when to run the jobs.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from croniter import CroniterError, croniter

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
    "created_by",
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
_UPDATABLE = frozenset(JOB_COLUMNS) - {"id", "created_at", "created_by"}
_JSON = ("selection", "options")

ON_NEW_DATA = "on-new-data"
CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
# The keys of a job's selection (their meaning: fitting.jobs).
SELECTION_KEYS = (
    "runs",
    "splits",
    "reduce",
    "finished",
    "split",
    "where",
    "exclude",
    "checkpoints",
)
REDUCE_VALUES = ("final", "all", "best")
# Any fixed instant: whether a cron expression ever fires does not depend on the clock.
_CRON_BASE = datetime(2000, 1, 1)


def validate_schedule(schedule: Any) -> str:
    """A five-field cron expression or 'on-new-data' (stripped); BadInputError otherwise.

    Refused: six-field (seconds) or seven-field crons, which croniter would accept but the
    scheduler's one-minute resolution cannot honour, and expressions that never fire
    (such as February 31st)."""
    hint = f"e.g. '*/5 * * * *' ({' '.join(CRON_FIELDS)}), or {ON_NEW_DATA!r}"
    if not isinstance(schedule, str) or not schedule.strip():
        raise BadInputError(f"a job needs a schedule: a cron expression, {hint}")
    text = " ".join(schedule.split())
    if text == ON_NEW_DATA:
        return text
    fields = text.split(" ")
    if len(fields) != len(CRON_FIELDS) or not croniter.is_valid(text):
        detail = (
            f"has {len(fields)} field{'s' if len(fields) != 1 else ''}, a cron "
            f"expression has {len(CRON_FIELDS)}"
            if len(fields) != len(CRON_FIELDS)
            else "is not a valid cron expression"
        )
        raise BadInputError(f"schedule {schedule!r} {detail}: {hint}")
    try:
        croniter(text, _CRON_BASE).get_next(datetime)
    except (CroniterError, ValueError) as err:
        raise BadInputError(f"schedule {schedule!r} never fires ({err}): {hint}") from err
    return text


def validate_selection(selection: Any) -> dict[str, Any]:
    """A job's selection as a dict (None means every default); BadInputError naming the
    first bad key or value."""
    sel = _json_object(selection, "selection")
    unknown = sorted(set(sel) - set(SELECTION_KEYS))
    if unknown:
        raise BadInputError(
            f"unknown selection key(s) {', '.join(unknown)}; known: {', '.join(SELECTION_KEYS)}"
        )
    for key in ("runs", "splits"):
        value = sel.get(key)
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)
        ):
            raise BadInputError(f"selection {key!r} must be a list of names, got {value!r}")
    if sel.get("reduce", "final") not in REDUCE_VALUES:
        raise BadInputError(
            f"selection 'reduce' must be 'final', 'best' or 'all', got {sel['reduce']!r}"
        )
    for key in ("where", "exclude"):  # the filters' grammar is checked by fitting.jobs
        value = sel.get(key)
        if value is not None and not isinstance(value, str | list):
            raise BadInputError(f"selection {key!r} must be a text or a list, got {value!r}")
    if sel.get("split") is not None and not isinstance(sel["split"], str):
        raise BadInputError(f"selection 'split' must be a name, got {sel['split']!r}")
    if not isinstance(sel.get("checkpoints", False), bool):
        raise BadInputError(
            f"selection 'checkpoints' must be true or false, got {sel['checkpoints']!r}"
        )
    if not isinstance(sel.get("finished", True), bool):
        raise BadInputError(f"selection 'finished' must be true or false, got {sel['finished']!r}")
    return sel


def validate_options(options: Any) -> dict[str, Any]:
    """A job's fit options as a dict of JSON values keyed by name (None means none)."""
    opts = _json_object(options, "options")
    try:
        json.dumps(opts, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise BadInputError(f"job options must be plain JSON values: {err}") from err
    return opts


def _json_object(value: Any, what: str) -> dict[str, Any]:
    """None, a dict, or JSON text of an object, as a dict with text keys."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise BadInputError(f"job {what} is not valid JSON: {err}") from err
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise BadInputError(f"job {what} must be a JSON object keyed by name, got {value!r}")
    return dict(value)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInputError(f"a job needs a {what} (non-empty text), got {value!r}")
    return value.strip()


def add_job(
    store: Store,
    *,
    name: str,
    project: str,
    law: str,
    selection: Any,
    options: Any,
    schedule: str,
    created_by: str | None = None,
) -> int:
    """Validate and save a job; returns its id. BadInputError (nothing written) for a
    missing name, project or law, a bad schedule, selection or options. `created_by`:
    the signed-in user, if any."""
    values = [
        _text(name, "name"),
        _text(project, "project"),
        _text(law, "law"),
        as_json_text(validate_selection(selection)),
        as_json_text(validate_options(options)),
        validate_schedule(schedule),
        created_by,
    ]
    with store.transaction() as con:
        row = con.execute(
            "INSERT INTO jobs (name, project, law, selection, options, schedule, created_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            values,
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
    # The spec is validated as on add; the run-state columns are the scheduler's own.
    if "schedule" in fields:
        fields["schedule"] = validate_schedule(fields["schedule"])
    if "selection" in fields:
        fields["selection"] = validate_selection(fields["selection"])
    if "options" in fields:
        fields["options"] = validate_options(fields["options"])
    for key in ("name", "project", "law"):
        if key in fields:
            fields[key] = _text(fields[key], key)
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
