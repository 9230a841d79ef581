"""A page's state in its URL (``st.query_params``), so a copied link reopens the same view.

Values are short text: a list of ids as ``fits=3,7``, a number as ``C=1e+21``. Reading is
forgiving (a hand-edited or stale link drops what it cannot read, never fails the page);
`seed` puts what the link says into a widget's state only on a session's first run, so
the user's later choices win, and `publish` writes the current choices back each run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import streamlit as st

MAX_IDS = 50


def encode_ids(ids: Iterable[int]) -> str:
    return ",".join(str(int(i)) for i in ids)


def decode_ids(text: str | None) -> list[int]:
    """`"3,7,x,3"` -> [3, 7]: positive integers in order, once each, bad items dropped."""
    out: list[int] = []
    for item in (text or "").split(","):
        item = item.strip()
        if item.isdigit() and int(item) > 0 and int(item) not in out:
            out.append(int(item))
    return out[:MAX_IDS]


def encode_number(value: float) -> str:
    return f"{float(value):.6g}"


def decode_number(text: str | None) -> float | None:
    """A positive finite number, else None."""
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def read_ids(name: str) -> list[int]:
    return decode_ids(st.query_params.get(name))


def read_number(name: str) -> float | None:
    return decode_number(st.query_params.get(name))


def seed(key: str, value: Any) -> None:
    """Give widget `key` the link's `value` before the widget is drawn, once a session."""
    if value is not None and key not in st.session_state:
        st.session_state[key] = value


def publish(values: Mapping[str, str | None]) -> None:
    """Set the URL's parameters to `values` (None or "" removes one); others are kept."""
    for name, text in values.items():
        if text:
            if st.query_params.get(name) != text:
                st.query_params[name] = text
        elif name in st.query_params:
            del st.query_params[name]
