"""The DuckDB store: schema, inbox shards, CSV import and plot queries.

Never imports torch, triton, fitting, trainers or app. Heavy modules (duckdb, pyarrow)
load on first use so that `import store` stays cheap for every dashboard page.

store/README.md maps the modules: the write path, the read path, the speed-ups, and the
temporary tables the write steps hand each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.core import Store

__all__ = ["Store"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from store.core import Store

        return Store
    raise AttributeError(f"module 'store' has no attribute {name!r}")
