"""The dashboard's access to the store: the store from the environment, brief caches.

Pages call these instead of the store directly. Caches live a few seconds at most so a
live run never looks stale; every write clears them (`invalidate`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd
import streamlit as st

LIVE_TTL_S = 2
LIST_TTL_S = 3
# Reads keyed by the project's data version can live long: a change makes a new key.
VERSION_TTL_S = 1
STABLE_TTL_S = 600


def store_root() -> str:
    """`$SCALINGLAB_STORE` (set by `scalinglab serve`), else the store's default."""
    from store.paths import resolve_root

    return str(resolve_root(os.environ.get("SCALINGLAB_STORE") or None))


def get_store() -> Any:
    from store import Store

    return Store(store_root())


def invalidate() -> None:
    """Forget cached reads after a write made here."""
    st.cache_data.clear()


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False)
def projects(root: str) -> list[str]:
    from store import Store, queries

    frame = queries.list_projects(Store(root))
    if isinstance(frame, pd.DataFrame):
        return [str(p) for p in frame["project"]] if len(frame) else []
    return [str(p) for p in frame]


@st.cache_data(ttl=VERSION_TTL_S, show_spinner=False)
def version(root: str, project: str) -> str:
    """The project's data version (cheap): the key under which its reads are cached."""
    from store import Store, queries

    return str(queries.data_version(Store(root), project))


def runs(root: str, project: str | None) -> pd.DataFrame:
    """Runs with their facts; a project's are recomputed only when its data changed."""
    if project is None:
        return _all_runs(root)
    return _runs(root, project, version(root, project))


@st.cache_data(ttl=STABLE_TTL_S, max_entries=64, show_spinner=False)
def _runs(root: str, project: str, data_version: str) -> pd.DataFrame:
    from store import Store, queries

    return queries.list_runs(Store(root), project=project)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def _all_runs(root: str) -> pd.DataFrame:
    from store import Store, queries

    return queries.list_runs(Store(root))


def cached_curve(
    root: str,
    project: str,
    run_names: tuple[str, ...],
    x: str,
    splits: tuple[str, ...] | None,
    max_points: int = 2000,
) -> pd.DataFrame:
    """A downsampled plot frame, cached per data version (a live run changes it)."""
    return _curve(root, project, run_names, x, splits, max_points, version(root, project))


@st.cache_data(ttl=STABLE_TTL_S, max_entries=64, show_spinner=False)
def _curve(
    root: str,
    project: str,
    run_names: tuple[str, ...],
    x: str,
    splits: tuple[str, ...] | None,
    max_points: int,
    data_version: str,
) -> pd.DataFrame:
    from store import Store, queries

    return queries.curve(
        Store(root),
        project,
        list(run_names),
        x=x,
        max_points=max_points,
        splits=list(splits) if splits else None,
    )


def final_points(root: str, project: str) -> pd.DataFrame:
    """Each (run, split)'s final point (`runsdata.final_points`), cached per data version."""
    return _final_points(root, project, version(root, project))


@st.cache_data(ttl=STABLE_TTL_S, max_entries=16, show_spinner=False)
def _final_points(root: str, project: str, data_version: str) -> pd.DataFrame:
    from app.dashboard import runsdata
    from store import Store

    return runsdata.final_points(Store(root), project)


def lr_curves(root: str, project: str, run_names: tuple[str, ...], x: str) -> pd.DataFrame:
    """The runs' learning rate against x (`runsdata.lr_curves`), cached per data version."""
    return _lr_curves(root, project, run_names, x, version(root, project))


@st.cache_data(ttl=STABLE_TTL_S, max_entries=64, show_spinner=False)
def _lr_curves(
    root: str, project: str, run_names: tuple[str, ...], x: str, data_version: str
) -> pd.DataFrame:
    from app.dashboard import runsdata
    from store import Store

    return runsdata.lr_curves(Store(root), project, run_names, x)


def selection_frame(root: str, project: str, selection: dict[str, Any]) -> pd.DataFrame:
    """The frame a fit of `selection` sees, cached per data version (refits are quick)."""
    key = json.dumps(selection, sort_keys=True, default=str)
    return _selection_frame(root, project, key, version(root, project))


@st.cache_data(ttl=STABLE_TTL_S, max_entries=16, show_spinner=False)
def _selection_frame(root: str, project: str, selection: str, data_version: str) -> pd.DataFrame:
    from fitting.jobs import select_data
    from store import Store

    return select_data(Store(root), project, json.loads(selection))


@st.cache_data(ttl=LIST_TTL_S, show_spinner=False)
def fits(
    root: str, project: str | None = None, job_id: int | None = None, version: Any = None
) -> pd.DataFrame:
    """Saved fits; `version` (e.g. a job's last_fit_id) is only part of the cache key."""
    from store import Store
    from store import fits as store_fits

    return store_fits.list_fits(Store(root), project=project, job_id=job_id)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def jobs(root: str) -> pd.DataFrame:
    from store import Store
    from store import jobs as store_jobs

    return store_jobs.list_jobs(Store(root))


def load_result(fit_id: int) -> Any:
    from fitting.persist import load_result as _load

    return _load(get_store(), int(fit_id))


def json_field(value: Any) -> dict[str, Any]:
    """A JSON column (text or already decoded) as a dict; {} when empty or unreadable."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value:
        return {}
    try:
        out = json.loads(value)
    except json.JSONDecodeError:
        return {}
    return out if isinstance(out, dict) else {}


def project_picker(label: str = "Project", *, key: str, allow_all: bool = False) -> str | None:
    """A project selectbox in the sidebar; None means every project."""
    names = projects(store_root())
    # A real project first, so the page shows something at once; "all" comes last.
    options = names + (["(all projects)"] if allow_all else [])
    if not options:
        return None
    choice = st.sidebar.selectbox(label, options, key=key)
    return None if choice == "(all projects)" else choice
