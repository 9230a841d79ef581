"""The scalinglab dashboard: `streamlit run app/dashboard/streamlit_app.py` (or `scalinglab serve`).

The store comes from `$SCALINGLAB_STORE`; each page is a script under `app/dashboard/views/`
(not `pages/`: Streamlit would list that folder itself before `st.navigation` runs).

With sign-in on (`scalinglab serve --auth FILE`) `auth.gate()` runs first, on every script
run: a signed-out visitor or a user on no role's list gets one page and the run stops
before the navigation, the store's name or any data exist. The navigation lists only the
pages the user's role may open (a page left out cannot be reached by its URL either).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts app/dashboard/ on sys.path, not the project root the packages live in.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from app.dashboard import access, auth, pageerrors, safetext, store_access  # noqa: E402

PAGES = [
    st.Page("views/runs.py", title="Runs", icon=":material/show_chart:", default=True),
    st.Page("views/upload.py", title="Upload", icon=":material/upload_file:"),
    st.Page("views/fit.py", title="Fit", icon=":material/functions:"),
    st.Page("views/predict.py", title="Predict", icon=":material/insights:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("views/jobs.py", title="Jobs", icon=":material/schedule:"),
]

# Pages that need more than reading, by their URL path: the action whose role opens them.
PAGE_NEEDS = {"upload": "upload"}
AUDIT_PAGE = st.Page("views/audit.py", title="Audit", icon=":material/policy:")


def pages_for(user: access.User) -> list[st.Page]:
    shown = [p for p in PAGES if access.permits(user, PAGE_NEEDS.get(p.url_path, "read"))]
    return shown + ([AUDIT_PAGE] if access.permits(user, "view_audit") else [])


def main() -> None:
    st.set_page_config(page_title="scalinglab", page_icon=":material/trending_down:", layout="wide")
    user = auth.gate()  # sign-in on: nothing below runs for a visitor without a role
    page = st.navigation(pages_for(user))
    st.sidebar.caption(f"store: {safetext.code(store_access.store_root())}")
    auth.sidebar(user)
    # No traceback reaches the browser: a short message and an id the server log carries.
    pageerrors.guard(page.run)


# Streamlit runs this file as `__main__`; a process pool started from a page (the
# bootstrap's forkserver workers) re-imports it as `__mp_main__`, where no page may run.
if __name__ == "__main__":
    main()
