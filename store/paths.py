"""Where the store lives: argument, else $SCALINGLAB_STORE, else ~/.scalinglab.

The inbox lives in the store folder unless it is placed elsewhere (argument, else
$SCALINGLAB_INBOX): a shared folder that trainers on other machines write into and the
server reads and ingests (docs/scale-out.md).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "SCALINGLAB_STORE"
INBOX_ENV_VAR = "SCALINGLAB_INBOX"
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


def resolve_inbox(root: Path, inbox: str | os.PathLike[str] | None = None) -> Path:
    """The inbox folder: the argument, then $SCALINGLAB_INBOX, then `root/inbox`."""
    if inbox is None or str(inbox) == "":
        inbox = os.environ.get(INBOX_ENV_VAR) or root / INBOX_DIR
    return Path(inbox).expanduser().resolve()
