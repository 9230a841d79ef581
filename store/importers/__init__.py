"""CSV import: long curves, W&B and TensorBoard exports, one-row-per-model tables.

`parse_file` validates a file into canonical frames without writing anything;
`import_files` writes validated files into a project in one transaction.
See docs/csv-formats.md for the accepted layouts, aliases and rules.
Folders and tracker files (TensorBoard event files, W&B offline runs) go to
`store.trackers` instead.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from store.errors import BadInputError
from store.importers.detect import FORMATS
from store.importers.parse import ParsedFile, parse_file
from store.importers.write import FileReport, ImportReport
from store.importers.write import import_files as import_csv_files

if TYPE_CHECKING:
    from store.core import Store

__all__ = [
    "FORMATS",
    "FileReport",
    "ImportReport",
    "ParsedFile",
    "import_csv_files",
    "import_files",
    "parse_file",
]


def import_files(
    store: Store,
    paths: list[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    project: str = "default",
    format: str = "auto",
    tags: dict[str, str | None] | None = None,
    **options: Any,
) -> ImportReport:
    """CSV files (`store.importers.write.import_files`, whose options these are) or
    tracker run folders (`store.trackers.import_runs`; `tags` chooses their tags)."""
    from store.trackers import import_runs, is_tracker_input

    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    tracker = [is_tracker_input(p, format) for p in items]
    if items and all(tracker):
        if options.get("mapping"):
            raise BadInputError("--map names CSV columns; choose a tracker's tags with --tag")
        if options.get("replicates", "refuse") != "refuse":
            raise BadInputError("--replicates applies to CSV files, not to tracker runs")
        return import_runs(
            store,
            items,
            project=project,
            format=format,
            tags=tags,
            bits=bool(options.get("bits", False)),
            schedule=options.get("schedule"),
            imported_by=options.get("imported_by"),
            archive=options.get("archive"),
        )
    if any(tracker):
        raise BadInputError("import CSV files and tracker run folders in separate calls")
    if tags:
        raise BadInputError("--tag chooses a tracker's tags; name CSV columns with --map")
    return import_csv_files(store, paths, project=project, format=format, **options)
