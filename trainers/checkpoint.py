"""Checkpoints under the store folder: `<store>/checkpoints/<project>/<run>/ckpt.pt`.

Written to a temporary name, fsynced, then renamed, so a kill (or a power loss) mid-write
leaves the previous checkpoint whole. Holds model and optimizer state and the last
completed step; the data stream needs nothing more, since batch i is a pure function of
(seed, i).

Loading uses `torch.load(weights_only=True)`: tensors, state dicts and plain metadata
(numbers, strings, lists, dicts) only, so a file dropped into `checkpoints/` cannot run
code. `save` turns any metadata into such plain values first.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from store.errors import ScalinglabError
from trainers.runlock import run_dir

FILE = "ckpt.pt"
_REQUIRED = ("model", "optimizer", "step")


class CheckpointError(ScalinglabError):
    """A checkpoint that cannot be loaded safely (or at all)."""


def checkpoint_dir(store_root: str | Path, project: str, run: str) -> Path:
    return run_dir(store_root, project, run)


def plain(value: Any) -> Any:
    """`value` as what `weights_only` loading accepts: dataclasses and mappings become
    dicts, numpy values numbers or lists, paths strings; tensors stay tensors."""
    if isinstance(value, torch.Tensor) or value is None:
        return value
    if isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, (int, str)) else k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"checkpoint metadata of type {type(value).__name__} is not plain data")


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
        "step": int(step),
        **plain(extra or {}),
    }
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(directory)
    return path


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(directory: Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The saved state, or None when there is no checkpoint.

    Raises `CheckpointError` for a file holding anything but weights and plain metadata
    (it is never unpickled), and for a file that is not a checkpoint at all.
    """
    path = directory / FILE
    if not path.exists():
        return None
    hint = "delete it, or train without resuming (--no-resume) to start the run afresh"
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise CheckpointError(f"{path}: not a readable checkpoint (not a torch zip file); {hint}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        names = f" (it references {found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path}: refused to load: it holds more than weights and plain metadata, and "
            f"loading it could run code{names}; {hint}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({first}); {hint}") from None
    if not isinstance(state, dict) or any(key not in state for key in _REQUIRED):
        raise CheckpointError(
            f"{path}: not a scalinglab checkpoint (expected the keys {list(_REQUIRED)}); {hint}"
        )
    return state
