"""Who is using the dashboard, and what they may do (issue 16's sign-in and roles).

Every page checks here, on the server, before any action that writes: ``require(action)``
returns the current `User` or shows a refusal and stops the script. With sign-in off (the
local, single-user default) the one user is an admin with no name.

Sign-in is on when Streamlit's secrets carry an ``[auth]`` section (`scalinglab serve
--auth FILE`, see `app.dashboard.authconfig`); the user is then who `st.login` signed in
(`st.user`, from Streamlit's signed cookie, read on the server) and their role comes from
the file's ``[roles]`` allow-lists. Signed out, or on no list: no role, nothing allowed.

Interface used by the pages:
- ``current_user() -> User``
- ``allowed(action) -> bool``      e.g. to disable a button for a viewer
- ``require(action) -> User``      before the write itself, never only in the widget
- ``audit(action, *, project=None, target=None, detail=None)``  after a write succeeded
Actions: see ``ACTIONS``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import streamlit as st

from app.dashboard.authconfig import ROLE_ORDER, Role, Roles, parse_roles
from store.errors import ScalinglabError

__all__ = [
    "ACTIONS",
    "ROLE_ORDER",
    "AccessDenied",
    "Role",
    "User",
    "allowed",
    "audit",
    "current_user",
    "permits",
    "require",
    "signin_enabled",
]

log = logging.getLogger(__name__)

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


class AccessDenied(ScalinglabError):
    """The user's role may not do the action (raised where no script run can be stopped)."""


@dataclass(frozen=True)
class User:
    name: str | None  # the e-mail (or subject) from the provider; None with sign-in off
    role: Role | None  # None: signed out, or signed in but on no role's list
    signed_in: bool = False


LOCAL_USER = User(name=None, role="admin")
SIGNED_OUT = User(name=None, role=None)


def _secrets() -> dict[str, Any]:
    """Streamlit's secrets as plain dicts ({} when there is no secrets file)."""
    try:
        if not st.secrets.load_if_toml_exists():
            return {}
        return st.secrets.to_dict()
    except Exception:  # an unreadable secrets file: sign-in cannot be on
        log.exception("cannot read Streamlit's secrets")
        return {}


def signin_enabled() -> bool:
    """True when the secrets configure `st.login` (an ``[auth]`` section)."""
    return bool(_secrets().get("auth"))


def roles() -> Roles:
    """The ``[roles]`` allow-lists (checked by `serve`; a bad section here grants nobody)."""
    try:
        return parse_roles(_secrets().get("roles"))
    except ScalinglabError:
        log.exception("the [roles] section is not valid; nobody gets a role")
        return Roles(lists={})


def user_from_claims(claims: dict[str, Any], allow: Roles) -> User:
    """The user the provider's claims describe (`st.user`'s), with their role."""
    if not claims.get("is_logged_in"):
        return SIGNED_OUT
    email = claims.get("email")
    # E-mails lower-cased: one person is one actor in the audit log, however they type it.
    name = email.strip().lower() if isinstance(email, str) and email.strip() else None
    name = name or str(claims.get("sub") or "") or None
    return User(name=name, role=allow.role_for(claims), signed_in=True)


def current_user() -> User:
    """The user of this session (sign-in off: an unnamed admin)."""
    if not signin_enabled():
        return LOCAL_USER
    return user_from_claims(dict(st.user.to_dict()), roles())


def permits(user: User, action: str) -> bool:
    """Whether `user`'s role reaches the least role `action` needs (KeyError: no such action)."""
    need = ACTIONS[action]
    return user.role is not None and ROLE_ORDER.index(user.role) >= ROLE_ORDER.index(need)


def allowed(action: str, user: User | None = None) -> bool:
    return permits(current_user() if user is None else user, action)


def require(action: str, user: User | None = None) -> User:
    """The current user (or `user`) if they may do `action`; otherwise a refusal and
    `st.stop()`. Outside a script run `st.stop()` returns, so AccessDenied is raised then:
    the write after `require` never happens either way."""
    who = current_user() if user is None else user
    if permits(who, action):
        return who
    role = who.role or ("signed out" if not who.signed_in else "no role")
    message = f"Your role ({role}) may not {action.replace('_', ' ')}."
    st.error(message)
    st.stop()
    raise AccessDenied(message)


def audit(
    action: str,
    *,
    project: str | None = None,
    target: str | int | None = None,
    detail: dict[str, Any] | None = None,
    user: User | None = None,
) -> None:
    """Record in the store's audit table that the current user (or `user`) did `action`.

    Called after the write succeeded; if the record itself cannot be written the page
    says so (the write stays done)."""
    from app.dashboard import store_access
    from store import audit as audit_log

    who = current_user() if user is None else user
    try:
        audit_log.record(
            store_access.get_store(),
            actor=who.name,
            role=who.role,
            action=action,
            project=project,
            target=None if target is None else str(target),
            detail=detail,
        )
    except ScalinglabError:
        log.exception("audit record of %s failed", action)
        st.warning("Done, but the audit log could not record it (see the server log).")
