"""Saved fits with their provenance (law, selection, data hash, options, code version).

JSON fields (`result_json`, `selection`, `options`) are stored and returned as text;
dicts given to `save_fit` are serialised with sorted keys.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from store.errors import BadInputError
from store.sql import where_equal

if TYPE_CHECKING:
    import pandas as pd

    from store.core import Store

FIT_COLUMNS = (
    "id",
    "project",
    "law",
    "result_json",
    "selection",
    "data_hash",
    "options",
    "code_version",
    "job_id",
    "created_at",
    "created_by",
)


def as_json_text(value: Any) -> str | None:
    """Text stays text; anything else is serialised as JSON (None stays None)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def save_fit(
    store: Store,
    *,
    project: str,
    law: str,
    result_json: Any,
    selection: Any,
    data_hash: str | None,
    options: Any,
    code_version: str | None,
    job_id: int | None = None,
    created_by: str | None = None,
) -> int:
    """Store one fit and return its id (`created_by`: the signed-in user, if any)."""
    if not project or not law:
        raise BadInputError("a fit needs a project and a law name")
    with store.transaction() as con:
        con.execute("INSERT INTO projects (project) VALUES (?) ON CONFLICT DO NOTHING", [project])
        row = con.execute(
            "INSERT INTO fits (project, law, result_json, selection, data_hash, options, "
            "code_version, job_id, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [
                project,
                law,
                as_json_text(result_json),
                as_json_text(selection),
                data_hash,
                as_json_text(options),
                code_version,
                job_id,
                created_by,
            ],
        ).fetchone()
    assert row is not None
    return int(row[0])


def load_fit(store: Store, fit_id: int) -> dict[str, Any]:
    """One fit as a dict of its columns; BadInputError when there is no such fit."""
    with store.connect(read_only=True) as con:
        cur = con.execute(f"SELECT {', '.join(FIT_COLUMNS)} FROM fits WHERE id = ?", [fit_id])
        row = cur.fetchone()
    if row is None:
        raise BadInputError(f"no fit with id {fit_id}")
    return dict(zip(FIT_COLUMNS, row, strict=True))


def list_fits(
    store: Store,
    project: str | None = None,
    law: str | None = None,
    job_id: int | None = None,
) -> pd.DataFrame:
    """Fits, newest first, optionally only one project's, one law's or one job's."""
    where, params = where_equal((("project", project), ("law", law), ("job_id", job_id)))
    with store.connect(read_only=True) as con:
        return con.execute(
            f"SELECT {', '.join(FIT_COLUMNS)} FROM fits {where} ORDER BY id DESC", params
        ).df()


def delete_fit(store: Store, fit_id: int) -> None:
    """Remove a fit; BadInputError when there is no such fit."""
    with store.transaction() as con:
        row = con.execute("DELETE FROM fits WHERE id = ? RETURNING id", [fit_id]).fetchone()
        if row is None:
            raise BadInputError(f"no fit with id {fit_id}")
