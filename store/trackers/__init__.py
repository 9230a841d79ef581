"""Curves from where they already live: tracker run folders read into the store.

One module per tracker (`tensorboard_events`, `wandb_offline`, `mlflow_store`, `trackio_db`);
each turns its files into
`store.trackers.series.TrackerRun`s, made canonical by `series.to_parsed` and written by
`write` in one transaction. The tracker packages are optional extras, imported only
inside the readers. `store.importers.import_files` sends folders and tracker files here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from store.errors import BadInputError

if TYPE_CHECKING:
    from store.core import Store
    from store.importers.parse import ParsedFile
    from store.importers.write import ImportReport
    from store.trackers.series import TrackerRun
    from store.trackers.write import Archive

TENSORBOARD = "tensorboard-events"
WANDB = "wandb-offline"
MLFLOW = "mlflow"
TRACKIO = "trackio"
TRACKER_FORMATS = (TENSORBOARD, WANDB, MLFLOW, TRACKIO)


def detect(path: Path) -> str | None:
    """The tracker format of a folder or file, or None when it is not a tracker's."""
    from store.trackers import mlflow_store, tensorboard_events, trackio_db, wandb_offline

    # An MLflow store first: its artifacts may hold event files a run logged.
    if mlflow_store.has_store(path):
        return MLFLOW
    if trackio_db.has_projects(path):
        return TRACKIO
    if tensorboard_events.has_event_files(path):
        return TENSORBOARD
    if wandb_offline.has_runs(path):
        return WANDB
    return None


def source_path(path: str | os.PathLike[str]) -> Path:
    """The file or folder a command-line source names (`sqlite:///x.db` is `x.db`)."""
    from store.trackers.mlflow_store import sqlite_uri_path

    return (
        sqlite_uri_path(str(path))
        if isinstance(path, str) and path.startswith("sqlite:")
        else Path(path)
    )


def is_tracker_input(path: str | os.PathLike[str], format: str) -> bool:
    """Whether `path` goes to a tracker reader (a folder always does)."""
    if format in TRACKER_FORMATS or (isinstance(path, str) and path.startswith("sqlite:")):
        return True
    p = Path(path)
    return p.is_dir() or (format in ("auto", "tensorboard") and detect(p) is not None)


def read_source(
    path: Path, format: str, tags: dict[str, str | None] | None = None
) -> list[TrackerRun]:
    from store.trackers import mlflow_store, tensorboard_events, trackio_db, wandb_offline

    if format == TENSORBOARD:
        return tensorboard_events.read_runs(path)
    if format == MLFLOW:
        return mlflow_store.read_runs(path, tags)
    if format == TRACKIO:
        return trackio_db.read_runs(path)
    return wandb_offline.read_runs(path)


def source_files(path: Path, format: str) -> list[Path]:
    from store.trackers import mlflow_store, tensorboard_events, trackio_db, wandb_offline

    if format == TENSORBOARD:
        return tensorboard_events.event_files(path)
    if format == MLFLOW:
        return mlflow_store.store_files(path)
    if format == TRACKIO:
        return trackio_db.source_files(path)
    return wandb_offline.run_files(path)


def resolve_format(path: Path, format: str) -> str:
    """The tracker format to read `path` with, or a located error."""
    if not path.exists():
        raise BadInputError("no such file or folder", file=str(path))
    if format == "tensorboard" and path.is_dir():
        return TENSORBOARD  # the CSV export is one file: a folder means its event files
    if format in TRACKER_FORMATS:
        return format
    found = detect(path)
    if found is None or format not in ("auto", found):
        raise BadInputError(
            "expected TensorBoard event files (events.out.tfevents.*), W&B offline runs "
            "(wandb/offline-run-*/run-*.wandb), an MLflow store (mlruns/ or an MLflow .db) "
            "or trackio project databases (<project>.db) here"
            + ("" if format == "auto" else f" for --format {format}"),
            file=str(path),
        )
    return found


def parse_runs(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    tags: dict[str, str | None] | None = None,
    bits: bool = False,
) -> ParsedFile:
    """Read and validate one tracker source into the canonical frames, writing nothing
    (what the Upload page previews); `BadInputError` naming the place on bad input."""
    from store.trackers import series, write

    source = source_path(path)
    fmt = resolve_format(source, format)
    sha = write.source_hash(source, source_files(source, fmt))
    runs = read_source(source, fmt, tags)
    return series.to_parsed(runs, path=source, format=fmt, sha256=sha, tags=tags, bits=bits)


def import_runs(
    store: Store,
    paths: list[str | os.PathLike[str]],
    *,
    project: str = "default",
    format: str = "auto",
    tags: dict[str, str | None] | None = None,
    bits: bool = False,
    schedule: str | None = None,
    imported_by: str | None = None,
    archive: Archive | None = None,
) -> ImportReport:
    """Import tracker run folders into `project`: every source, or (on bad input) none;
    `imported_by` (the signed-in user, if any) goes with every upload row; `archive`: the
    uploaded zip the folders were unpacked from, kept in the store."""
    from store.trackers import series, write

    if not paths:
        raise BadInputError("no folders to import")
    if not project or not project.strip():
        raise BadInputError("the project name must not be empty")
    sources = [(source_path(p), resolve_format(source_path(p), format)) for p in paths]
    listed = [(p, fmt, source_files(p, fmt)) for p, fmt in sources]
    hashes = [write.source_hash(p, files) for p, _, files in listed]
    options = write.options_key("tracker", {"tags": tags, "bits": bits, "schedule": schedule})
    done = write.already_imported(store, project, options, hashes)
    report = write.report_for(project)
    todo = []
    for (path, fmt, _), sha in zip(listed, hashes, strict=True):
        if sha in done:
            from store.importers.write import FileReport

            report.files.append(FileReport(str(path), fmt, sha, skipped=True))
            continue
        runs = read_source(path, fmt, tags)
        if schedule:
            for run in runs:
                run.facts["schedule"] = schedule
        parsed = series.to_parsed(runs, path=path, format=fmt, sha256=sha, tags=tags, bits=bits)
        todo.append(parsed)
        report.files.append(write.file_report(path, parsed))
    if todo:
        write.write_parsed(store, project, options, todo, imported_by, archive)
    return report
