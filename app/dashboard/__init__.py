"""The Streamlit dashboard: `streamlit_app.py` and its pages in `views/`, with the data
access, figures and text helpers they share. Runs without torch or triton."""
