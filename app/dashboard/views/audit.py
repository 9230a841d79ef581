"""Audit (admins only): who signed in, uploaded, saved a fit, made, ran or deleted a job.

Listed in the navigation for admins alone; the page checks the role itself too, on the
server, so its URL shows nothing to anyone else.
"""

from __future__ import annotations

import streamlit as st

from app.dashboard import access, store_access
from store import audit

SHOWN = 1000


def main() -> None:
    access.require("view_audit")
    st.title("Audit")
    st.caption(f"The latest {SHOWN} actions, newest first.")
    frame = audit.list_audit(store_access.get_store(), limit=SHOWN)
    if not len(frame):
        st.info("Nothing recorded yet.")
        return
    c1, c2 = st.columns(2)
    actors = sorted({str(a) for a in frame["actor"].dropna()})
    actions = sorted({str(a) for a in frame["action"].dropna()})
    who = c1.multiselect("Who", actors, key="audit-actor")
    what = c2.multiselect("Action", actions, key="audit-action")
    if who:
        frame = frame[frame["actor"].isin(who)]
    if what:
        frame = frame[frame["action"].isin(what)]
    # A dataframe shows its cells as text: nothing a user typed is rendered as Markdown.
    st.dataframe(frame, hide_index=True, width="stretch", key="audit-table")


main()
