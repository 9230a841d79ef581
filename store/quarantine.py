"""The quarantine: where an inbox shard goes when it cannot be read or fails its checks.

One bad shard (a torn or foreign file, another writer's Parquet with the wrong columns,
facts that do not fit their columns) must not stop the reads and ingests of every
project. The read or ingest that finds it moves it to `<store>/quarantine/`, writes the
reason beside it (`<name>.reason.json`), logs a warning naming both, and serves
everything else. Nothing there is read again; `scalinglab info` lists it, and a shard
fixed by hand can be moved back into `inbox/`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

from store import paths

log = logging.getLogger("scalinglab.store")
REASON_SUFFIX = ".reason.json"


def folder(root: Path) -> Path:
    return root / paths.QUARANTINE_DIR


def quarantine(root: Path, shard: Path, reason: str) -> bool:
    """Move inbox `shard` of store `root` to the quarantine with its reason.

    False when the shard is already gone (another process quarantined or ingested it).
    """
    target_dir = folder(root)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / shard.name
    try:
        os.replace(shard, target)
    except FileNotFoundError:
        return False
    note = {
        "shard": shard.name,
        "reason": reason,
        "quarantined_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    sidecar = target_dir / f"{shard.name}{REASON_SUFFIX}"
    tmp = target_dir / f".tmp-{sidecar.name}"
    tmp.write_text(json.dumps(note, indent=2) + "\n")
    os.replace(tmp, sidecar)
    log.warning(
        "quarantined inbox shard %s: %s (moved to %s; everything else is served as usual)",
        shard.name,
        reason,
        target,
    )
    return True


def list_quarantined(root: Path) -> list[dict[str, Any]]:
    """The quarantined shards of store `root`, oldest name first, with their reasons."""
    here = folder(root)
    if not here.is_dir():
        return []
    out = []
    for shard in sorted(here.glob("*.parquet")):
        sidecar = here / f"{shard.name}{REASON_SUFFIX}"
        try:
            note = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            note = {"reason": "unknown (no readable reason file)"}
        out.append(
            {
                "shard": shard.name,
                "reason": note.get("reason"),
                "quarantined_at": note.get("quarantined_at"),
            }
        )
    return out
