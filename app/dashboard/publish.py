"""Figures as researchers take them away: publication styling and PNG/SVG downloads.

Interface used by the pages (the compare/share helper fills in the rest):
- ``chart(fig, *, key, name)``: draw a Plotly figure with publication styling, plus
  PNG and SVG downloads named after `name`; returns what ``st.plotly_chart`` returns
  (pass ``on_select`` and other keyword arguments through).
"""

from __future__ import annotations

from typing import Any

import streamlit as st


def chart(fig: Any, *, key: str, name: str, **kwargs: Any) -> Any:
    """Draw `fig`; downloads to follow."""
    del name
    kwargs.setdefault("width", "stretch")
    return st.plotly_chart(fig, key=key, **kwargs)
