"""The scalinglab dashboard: `streamlit run app/dashboard/streamlit_app.py` (or `scalinglab serve`).

The store comes from `$SCALINGLAB_STORE`; each page is a script under `app/dashboard/views/`
(not `pages/`: Streamlit would list that folder itself before `st.navigation` runs).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts app/dashboard/ on sys.path, not the project root the packages live in.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from app.dashboard import pageerrors, safetext, store_access  # noqa: E402

PAGES = [
    st.Page("views/runs.py", title="Runs", icon=":material/show_chart:", default=True),
    st.Page("views/upload.py", title="Upload", icon=":material/upload_file:"),
    st.Page("views/fit.py", title="Fit", icon=":material/functions:"),
    st.Page("views/predict.py", title="Predict", icon=":material/insights:"),
    st.Page("views/jobs.py", title="Jobs", icon=":material/schedule:"),
]

st.set_page_config(page_title="scalinglab", page_icon=":material/trending_down:", layout="wide")
page = st.navigation(PAGES)
st.sidebar.caption(f"store: {safetext.code(store_access.store_root())}")
# No traceback reaches the browser: a short message and an id the server log carries.
pageerrors.guard(page.run)
