"""The Fit page's state in the URL (`st.query_params`), so a link reopens the same fit view.

Each URL parameter names one widget of the page (its session-state key); the page reads
them once per session, before its widgets are drawn, and writes the widgets' values back
after every run. `fit=1` in a link starts the fit on opening.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

READ_FLAG = "fit-url-read"


def _bool(text: str) -> bool:
    return text.lower() in ("1", "true", "yes", "on")


def _key(suffix: str) -> Callable[[bool], str]:
    """A widget key that depends on the law's kind (curve laws keep their own split)."""
    return lambda curve: f"fit-{suffix}-{curve}"


# URL parameter -> (session key, or a function of "is a curve law" giving it; the type).
PARAMS: dict[str, tuple[str | Callable[[bool], str], type]] = {
    "project": ("fit-project", str),
    "law": ("fit-law", str),
    "runs": ("fit-runs", list),
    "split": (_key("split"), str),
    "reduce": (_key("reduce"), str),
    "where": ("fit-where", str),
    "exclude": ("fit-exclude", list),
    "checkpoints": ("fit-checkpoints", bool),
    "running": ("fit-running", bool),
    "x": ("fit-x", str),
    "intervals": ("fit-intervals", str),
    "boot": ("fit-boot", int),
    "loss": ("fit-obj", str),
    "delta": ("fit-delta", float),
    "residuals": ("fit-residuals", str),
    "group": ("fit-group", str),
    "share": ("fit-share", list),
    "tie": ("fit-tie", str),
}


def session_key(param: str, curve: bool) -> str:
    key = PARAMS[param][0]
    return key(curve) if callable(key) else key


def is_curve_law(name: str | None) -> bool:
    from fitting.laws import LAWS

    law = LAWS.get(str(name))
    return law is not None and law.kind == "curves"


def read_once() -> bool:
    """Copy the URL's parameters into the widgets' session state, once per session (a
    value a widget cannot take is dropped by the page's checks); True when the link
    asks for the fit itself (``fit=1``)."""
    if st.session_state.get(READ_FLAG):
        return False
    st.session_state[READ_FLAG] = True
    params = st.query_params
    curve = is_curve_law(params.get("law"))
    for name, (_, kind) in PARAMS.items():
        if name not in params:
            continue
        key = session_key(name, curve)
        try:
            if kind is list:
                st.session_state[key] = [v for v in params.get_all(name) if v]
            elif kind is bool:
                st.session_state[key] = _bool(params[name])
            else:
                st.session_state[key] = kind(params[name])
        except ValueError:  # a hand-edited link: that widget keeps its default
            continue
    if "exclude" in params:  # the list the page keeps beside its widget
        st.session_state["fit-excluded"] = list(st.session_state.get("fit-exclude", []))
    return _bool(params.get("fit", "0"))


def write(curve: bool, fitted: bool) -> None:
    """The widgets' current values into the URL (empty ones left out)."""
    out: dict[str, Any] = {}
    for name in PARAMS:
        value = st.session_state.get(session_key(name, curve))
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, bool):
            value = "1" if value else "0"
        out[name] = [str(v) for v in value] if isinstance(value, list) else str(value)
    if fitted:
        out["fit"] = "1"
    current = {k: st.query_params.get_all(k) for k in st.query_params}
    wanted = {k: v if isinstance(v, list) else [v] for k, v in out.items()}
    if current != wanted:  # unchanged: nothing sent to the browser
        st.query_params.from_dict(out)
