"""An unexpected error on a page: a short message and an id in the browser, the traceback
in the server log under that id.

`.streamlit/config.toml` sets `client.showErrorDetails = "none"` so Streamlit itself never
sends a traceback to the browser (fragments included); pages run inside `guard()`, which
names the error so that whoever reads the server log finds it.
"""

from __future__ import annotations

import functools
import secrets
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st
from streamlit.logger import get_logger

# Streamlit's own log format and handler (the dashboard child's stderr, which serve keeps).
LOG = get_logger("scalinglab.dashboard")
F = TypeVar("F", bound=Callable[..., Any])


def new_error_id() -> str:
    return secrets.token_hex(4)


def report(err: BaseException) -> str:
    """Log `err` with its traceback under a fresh id, show the short message; the id."""
    error_id = new_error_id()
    LOG.error("dashboard error %s: %s", error_id, type(err).__name__, exc_info=err)
    st.error(
        f"Something went wrong on this page (error id {error_id}). "
        "The server log has the details under that id."
    )
    return error_id


def propagate() -> bool:
    """Under `streamlit.testing` (AppTest, never imported by a server) errors propagate,
    so a page test's `at.exception` still sees them."""
    return "streamlit.testing.v1" in sys.modules


def guard(run: Callable[[], Any]) -> None:
    """Run a page; an exception (not Streamlit's own rerun/stop) becomes `report(err)`."""
    guarded(run)()


def guarded(fn: F) -> F:
    """`fn` with its exceptions reported (for fragment bodies, which run outside the page):
    st.rerun/st.stop are BaseExceptions and pass through."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # shown without its details, logged with them
            if propagate():
                raise
            report(err)
            return None

    return wrapper  # type: ignore[return-value]
