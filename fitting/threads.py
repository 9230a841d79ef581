"""Threads for the engine's elementwise work inside one fit.

NumPy's ufuncs release the GIL on large arrays, so a law whose prediction is a big
elementwise pass (multi_power's loss-drop terms) runs it in parts on a few threads: about
twice as fast on 2 cores, where the Fit page's fit and its watched bootstrap run in one
process. A bootstrap worker process calls ``single()``: its pool already fills the cores.
``$SCALINGLAB_FIT_THREADS`` sets the count (default: the usable cores, at most 4).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

MAX_DEFAULT = 4
_T = TypeVar("_T")
_R = TypeVar("_R")
_STATE: dict[str, object] = {"limit": None, "pool": None}
_LOCK = threading.Lock()


def count() -> int:
    """How many threads a fit's elementwise work may use in this process."""
    limit = _STATE["limit"]
    if isinstance(limit, int):
        return limit
    raw = os.environ.get("SCALINGLAB_FIT_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT, cores))


def single() -> None:
    """This process does its elementwise work on one thread (a bootstrap worker)."""
    _STATE["limit"] = 1


def map_parts(fn: Callable[[_T], _R], parts: Sequence[_T]) -> list[_R]:
    """``[fn(p) for p in parts]``, the parts on the shared pool's threads."""
    if len(parts) <= 1:
        return [fn(p) for p in parts]
    return list(_pool().map(fn, parts))


def _forget_pool() -> None:
    # A forked child has the pool object but none of its threads: it makes its own.
    _STATE["pool"] = None


os.register_at_fork(after_in_child=_forget_pool)


def _pool() -> ThreadPoolExecutor:
    with _LOCK:
        pool = _STATE["pool"]
        if not isinstance(pool, ThreadPoolExecutor):
            pool = ThreadPoolExecutor(MAX_DEFAULT, thread_name_prefix="scalinglab-fit")
            _STATE["pool"] = pool
        return pool
