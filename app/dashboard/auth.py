"""The sign-in gate the dashboard's script passes before any page exists (issue 16).

With sign-in off nothing shows and the local user is an admin. On, a signed-out visitor
gets the sign-in page and a signed-in user on no role's list a refusal: each ends the
script run (`st.stop`) before the navigation, the store's name or any data is sent. This
runs on the server in every script run, so no page can be reached around it.
"""

from __future__ import annotations

import threading
from typing import Any

import streamlit as st

from app.dashboard import access, safetext

# Each sign-in is audited once: a login's ID token has its own issue time (`iat`), which
# every browser session that login opens shares (this process's memory; a restart of the
# dashboard may record a login again, once).
_SEEN: set[tuple[str, str | None, Any]] = set()
_SEEN_LOCK = threading.Lock()


def gate() -> access.User:
    """The signed-in user with a role (or the local admin); otherwise a page and st.stop()."""
    if not access.signin_enabled():
        return access.LOCAL_USER
    user = access.current_user()
    if not user.signed_in:
        signin_page()
        st.stop()
    if user.role is None:
        _audit_once("sign_in_refused", user)
        refused_page(user)
        st.stop()
    _audit_once("sign_in", user)
    return user


def _audit_once(action: str, user: access.User) -> None:
    """One audit row per sign-in (not per page load: each opens a session)."""
    issued = st.user.to_dict().get("iat")
    with _SEEN_LOCK:
        if (action, user.name, issued) in _SEEN:
            return
        _SEEN.add((action, user.name, issued))
    access.audit(action, user=user, detail={"issued_at": issued})


def signin_page() -> None:
    st.title("scalinglab")
    st.write("Sign in to see the dashboard.")
    if st.button("Sign in", type="primary", key="auth-signin"):
        st.login()


def refused_page(user: access.User) -> None:
    st.title("scalinglab")
    st.error(
        f"You are signed in as {safetext.md(user.name or 'an unnamed user')}, who is not on "
        "this dashboard's list of users. Ask its admin to add you."
    )
    if st.button("Sign out", key="auth-signout-refused"):
        st.logout()


def sidebar(user: access.User) -> None:
    """Who is signed in, their role, and the sign-out button (sign-in on only)."""
    if not user.signed_in:
        return
    st.sidebar.caption(f"signed in as {safetext.md(user.name or '?')} ({user.role})")
    if st.sidebar.button("Sign out", key="auth-signout"):
        st.logout()
