"""An MLflow file store as MLflow's own client will read it, without writing into it.

MLflow's file store wants folders that hold nothing: `.trash/` at the top ("Invalid parent
directory") and each run's `artifacts/` ("Run ... not found"). A zip made without folder
entries (`zip` with `-D`, many GUI tools, a script's `zipfile` loop) loses exactly those.
`complete_view` then gives a temporary mirror: real folders, links to every file and
folder of the original, and the missing empty folders added. A complete store is read
where it lies.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TRASH = ".trash"
ARTIFACTS = "artifacts"


def _is_run(folder: Path) -> bool:
    return folder.is_dir() and (folder / "meta.yaml").is_file()


def missing_folders(root: Path, experiments: list[Path]) -> bool:
    """Whether the store at `root` lacks a folder MLflow's client needs to read it."""
    if not (root / TRASH).is_dir():
        return True
    return any(
        _is_run(run) and not (run / ARTIFACTS).is_dir()
        for experiment in experiments
        for run in experiment.iterdir()
    )


@contextmanager
def complete_view(root: Path, experiments: list[Path]) -> Iterator[Path]:
    """`root` itself when complete, else a temporary mirror of it with the missing empty
    folders (removed on exit). `experiments`: the store's experiment folders."""
    if not missing_folders(root, experiments):
        yield root
        return
    with tempfile.TemporaryDirectory(prefix="mlruns-view-") as tmp:
        view = Path(tmp) / root.name
        view.mkdir()
        (view / TRASH).mkdir()
        chosen = {e.name for e in experiments}
        for child in root.iterdir():
            if child.name == TRASH:
                continue
            if child.name in chosen:
                _mirror_experiment(child, view / child.name)
            else:
                (view / child.name).symlink_to(child.resolve())
        yield view


def _mirror_experiment(experiment: Path, into: Path) -> None:
    into.mkdir()
    for child in experiment.iterdir():
        if not _is_run(child):
            (into / child.name).symlink_to(child.resolve())
            continue
        run = into / child.name
        run.mkdir()
        for part in child.iterdir():
            (run / part.name).symlink_to(part.resolve())
        if not (run / ARTIFACTS).exists():
            (run / ARTIFACTS).mkdir()
