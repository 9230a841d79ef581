"""Checkpoints under the store folder: `<store>/checkpoints/<project>/<run>/ckpt.pt`.

Written to a temporary name then renamed, so a kill mid-write leaves the previous
checkpoint whole. Holds model and optimizer state and the last completed step; the data
stream needs nothing more, since batch i is a pure function of (seed, i).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FILE = "ckpt.pt"


def checkpoint_dir(store_root: str | Path, project: str, run: str) -> Path:
    return Path(store_root) / "checkpoints" / project / run


def save(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path, tmp = directory / FILE, directory / f".{FILE}.{os.getpid()}.tmp"
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        **(extra or {}),
    }
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load(directory: Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The saved state, or None when there is no checkpoint."""
    path = directory / FILE
    if not path.exists():
        return None
    return torch.load(path, map_location=map_location, weights_only=False)
