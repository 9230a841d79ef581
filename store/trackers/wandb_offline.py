"""W&B offline runs: placeholder until the reader lands."""

from __future__ import annotations

from pathlib import Path

from store.errors import BadInputError
from store.trackers.series import TrackerRun


def run_files(path: Path) -> list[Path]:
    if path.is_file() and path.suffix == ".wandb":
        return [path]
    return sorted(p for p in path.glob("**/*.wandb") if p.is_file()) if path.is_dir() else []


def has_runs(path: Path) -> bool:
    return bool(run_files(path))


def read_runs(path: Path) -> list[TrackerRun]:
    raise BadInputError("W&B offline runs cannot be read yet", file=str(path))
