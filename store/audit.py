"""The audit log: who did what, when (issue 16). One row per write done through the
dashboard, and per sign-in; written after the action itself succeeded.

`detail` is stored as JSON text (sorted keys); the reader returns it as text.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from store.errors import BadInputError
from store.sql import where_equal

if TYPE_CHECKING:
    import pandas as pd

    from store.core import Store

AUDIT_COLUMNS = ("id", "occurred_at", "actor", "role", "action", "project", "target", "detail")
DEFAULT_LIMIT = 1000


def record(
    store: Store,
    *,
    actor: str | None,
    role: str | None,
    action: str,
    project: str | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one audit row and return its id; BadInputError for an empty action."""
    if not isinstance(action, str) or not action.strip():
        raise BadInputError("an audit record needs an action name")
    text = None if detail is None else json.dumps(detail, sort_keys=True, default=str)
    with store.transaction() as con:
        row = con.execute(
            "INSERT INTO audit (actor, role, action, project, target, detail) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            [actor, role, action.strip(), project, target, text],
        ).fetchone()
    assert row is not None
    return int(row[0])


def list_audit(
    store: Store,
    *,
    actor: str | None = None,
    action: str | None = None,
    project: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> pd.DataFrame:
    """Audit rows, newest first (at most `limit`), optionally one actor's, action's or
    project's."""
    where, params = where_equal((("actor", actor), ("action", action), ("project", project)))
    with store.connect(read_only=True) as con:
        return con.execute(
            f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit {where} ORDER BY id DESC LIMIT ?",
            [*params, int(limit)],
        ).df()
