"""The Fit page's side of a background fit (`fitrunner`): start one (cancelling the one
before), take its results into the page's state, and the polled progress panel with its
Cancel button.

Session state: ``fit-run`` (the `FitRun`), ``fit-run-shown`` (the snapshot version the
page last drew), ``fit`` (what the page shows: result, data, project, selection, law,
options, final) and ``fit-message`` (how the last fit ended, when not with a result).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.dashboard import fitrunner, store_access
from app.dashboard.safetext import md
from store.errors import ScalinglabError

POLL_S = 0.5


def start_fit(
    project: str, law_name: str, selection: dict[str, Any], options: dict[str, Any]
) -> bool:
    """Load the selection here (errors show at once) and fit it in the background; a fit
    still running is cancelled first. False when the selection could not be loaded."""
    try:
        frame = store_access.selection_frame(store_access.store_root(), project, selection)
    except ScalinglabError as err:
        st.error(md(err))
        return False
    previous = st.session_state.get("fit-run")
    st.session_state["fit-run"] = fitrunner.start(
        store_access.get_store(), project, law_name, selection, options, frame, previous
    )
    st.session_state["fit-request"] = {
        "project": project,
        "law": law_name,
        "selection": selection,
        "options": options,
    }
    st.session_state.pop("fit-message", None)
    return True


def absorb() -> fitrunner.Snapshot | None:
    """Take the running fit's newest result (quick or full) and its end into the page's
    state; the snapshot drawn."""
    run: fitrunner.FitRun | None = st.session_state.get("fit-run")
    if run is None:
        return None
    snap = run.snapshot()
    if snap.version == st.session_state.get("fit-run-shown"):
        return snap
    st.session_state["fit-run-shown"] = snap.version
    request = st.session_state.get("fit-request") or {}
    if snap.result is not None:
        current = st.session_state.get("fit") or {}
        if current.get("run_id") != snap.id or current.get("final") != snap.final:
            st.session_state["fit"] = {
                **request,
                "result": snap.result,
                "data": snap.data,
                "selection": {**request.get("selection", {}), **(snap.result.selection or {})},
                "final": snap.final,
                "run_id": snap.id,
                "first_s": snap.first_s,
            }
    if snap.state == "cancelled":
        quick = snap.result is not None
        why = (
            f" (no page followed it for {fitrunner.ABANDON_S / 60:.0f} minutes)"
            if snap.abandoned
            else ""
        )
        st.session_state["fit-message"] = (
            "info",
            f"Fit cancelled{why}"
            + (
                f" during {fitrunner.STAGE_TEXT.get(snap.stage, snap.stage)} ({snap.done} of "
                f"{snap.total}): shown is the point estimate with its quick intervals."
                if quick
                else "."
            ),
        )
    elif snap.state == "failed":
        st.session_state["fit-message"] = ("error", f"Fit failed: {snap.error}")
    return snap


def message() -> None:
    """How the last fit ended, when it ended without its full result."""
    kind, text = st.session_state.get("fit-message") or (None, None)
    if kind == "error":
        st.error(md(text))
    elif kind == "info":
        st.info(md(text))


def _panel() -> None:
    run: fitrunner.FitRun | None = st.session_state.get("fit-run")
    if run is None:
        return
    snap = run.snapshot()
    if snap.version != st.session_state.get("fit-run-shown"):
        st.rerun()  # a result arrived or the fit ended: redraw the whole page
    if not snap.running:
        return
    law = (st.session_state.get("fit-request") or {}).get("law", "")
    cancelled = run.cancel_event.is_set()
    label = "cancelling…" if cancelled else snap.progress_text()
    st.progress(snap.fraction(), text=f"Fitting {md(law)}: {label} ({snap.elapsed_s:.0f} s)")
    if st.button("Cancel", key="fit-cancel", disabled=cancelled):
        run.cancel()
        st.rerun(scope="fragment")


def progress_panel(snap: fitrunner.Snapshot | None) -> None:
    """The progress bar and Cancel button, redrawn every `POLL_S` while a fit runs."""
    if snap is not None and snap.running:
        st.fragment(_panel, run_every=POLL_S)()
    else:
        _panel()
