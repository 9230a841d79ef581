"""Writing tracker runs: every source validated first, then one transaction.

A source (a folder of runs, one run's folder, one file) is identified by a SHA-256 over
its files' relative names and bytes, with the project and the options: importing it
again adds nothing, and a folder that has grown since is read again (its points
upserted, so only the new steps are new). The raw files are not copied (they can be
large); `uploads.path` names where they were read from, or, for sources unpacked from an
uploaded zip (an `Archive`, whose folder goes once imported), the zip kept as
`uploads/<its sha256>.zip`, named only once the rows are committed, as CSV copies are.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.importers.parse import ParsedFile
from store.importers.write import (
    FileReport,
    ImportReport,
    _staging_name,
    _write_one,
    sweep_stale_uploads,
)

if TYPE_CHECKING:
    from store.core import Store

_CHUNK = 16 << 20


@dataclass(frozen=True)
class Archive:
    """The uploaded zip that the sources being imported were unpacked from."""

    path: Path
    sha256: str
    name: str  # as uploaded


def source_hash(root: Path, files: list[Path]) -> str:
    """SHA-256 over each file's name below `root` and its bytes, in a stable order."""
    digest = hashlib.sha256()
    base = root if root.is_dir() else root.parent
    for file in sorted(files):
        name = file.relative_to(base).as_posix().encode()
        digest.update(len(name).to_bytes(8, "little") + name)
        digest.update(file.stat().st_size.to_bytes(8, "little"))
        with file.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def options_key(format: str, options: dict[str, Any]) -> str:
    return json.dumps({"format": format, **options}, sort_keys=True, default=str)


def already_imported(store: Store, project: str, options: str, hashes: list[str]) -> set[str]:
    store.ensure()
    with store.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT sha256 FROM uploads WHERE project = ? AND options = ? "
            "AND list_contains(?, sha256)",
            [project, options, hashes],
        ).fetchall()
    return {row[0] for row in rows}


def write_parsed(
    store: Store,
    project: str,
    options: str,
    parsed: list[ParsedFile],
    imported_by: str | None = None,
    archive: Archive | None = None,
) -> None:
    """All sources' runs and points in one transaction, each source noted in `uploads`;
    `archive` (the zip they came from) is kept under `uploads/` and named in their rows."""
    kept: tuple[Path, Path] | None = None
    if archive is not None:
        sweep_stale_uploads(store.uploads_dir)
        target = store.uploads_dir / f"{archive.sha256}.zip"
        if not target.exists():
            kept = (target, _staging_name(target))
            shutil.copyfile(archive.path, kept[1])
    try:
        with store.transaction() as con:
            for item in parsed:
                _write_one(con, project, item)
                con.execute(
                    "INSERT INTO uploads (sha256, project, options, original_name, format, "
                    "path, n_runs, n_points, imported_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    [
                        item.sha256,
                        project,
                        options,
                        archive.name if archive else item.path.name,
                        item.format,
                        f"{archive.sha256}.zip" if archive else str(item.path.resolve()),
                        len(item.run_names),
                        item.n_points,
                        imported_by,
                    ],
                )
    except BaseException:
        if kept is not None:
            kept[1].unlink(missing_ok=True)
        raise
    if kept is not None:
        os.replace(kept[1], kept[0])


def report_for(project: str) -> ImportReport:
    return ImportReport(project=project)


def file_report(path: Path, parsed: ParsedFile) -> FileReport:
    return FileReport(
        str(path),
        parsed.format,
        parsed.sha256,
        len(parsed.run_names),
        parsed.n_points,
        warnings=parsed.warnings,
    )
