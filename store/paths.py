"""Where the store lives: argument, else $SCALINGLAB_STORE, else ~/.scalinglab."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "SCALINGLAB_STORE"
DEFAULT_ROOT = Path("~/.scalinglab")
DB_NAME = "scalinglab.duckdb"
INBOX_DIR = "inbox"
UPLOADS_DIR = "uploads"
# Inbox shards that could not be read or failed their checks (see `store.quarantine`).
QUARANTINE_DIR = "quarantine"


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The store folder: the argument wins, then the environment, then the default."""
    if root is None or str(root) == "":
        root = os.environ.get(ENV_VAR) or DEFAULT_ROOT
    return Path(root).expanduser().resolve()
