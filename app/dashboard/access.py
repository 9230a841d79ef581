"""Who is using the dashboard, and what they may do (issue 16's sign-in and roles).

Every page checks here, on the server, before any action that writes: ``require(action)``
returns the current `User` or shows a refusal and stops the script. With sign-in off (the
local, single-user default) the one user is an admin with no name.

Interface used by the pages (the sign-in helper fills in the rest):
- ``current_user() -> User``
- ``allowed(action) -> bool``      e.g. to disable a button for a viewer
- ``require(action) -> User``      before the write itself, never only in the widget
- ``audit(action, *, project=None, target=None, detail=None)``  after a write succeeded
Actions: see ``ACTIONS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import streamlit as st

Role = Literal["viewer", "editor", "admin"]
ROLE_ORDER: tuple[Role, ...] = ("viewer", "editor", "admin")

# The least role each action needs: a viewer reads and fits without saving.
ACTIONS: dict[str, Role] = {
    "read": "viewer",
    "fit": "viewer",
    "upload": "editor",
    "save_fit": "editor",
    "create_job": "editor",
    "edit_job": "editor",
    "run_job": "editor",
    "delete": "admin",
    "settings": "admin",
    "view_audit": "admin",
}


@dataclass(frozen=True)
class User:
    name: str | None  # the e-mail (or subject) from the provider; None with sign-in off
    role: Role


def current_user() -> User:
    """The user of this session (sign-in off: an unnamed admin)."""
    return User(name=None, role="admin")


def allowed(action: str) -> bool:
    need = ACTIONS[action]
    return ROLE_ORDER.index(current_user().role) >= ROLE_ORDER.index(need)


def require(action: str) -> User:
    """The current user if they may do `action`; otherwise a refusal and `st.stop()`."""
    user = current_user()
    if not allowed(action):
        st.error(f"Your role ({user.role}) may not {action.replace('_', ' ')}.")
        st.stop()
    return user


def audit(
    action: str,
    *,
    project: str | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record who did `action` (a no-op until the audit table is wired in)."""
    del action, project, target, detail
