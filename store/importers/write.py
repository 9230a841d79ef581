"""`import_files`: validate every file first, then write them all in one transaction.

A file is identified by its SHA-256 together with the project and the import options;
importing it again is a no-op. The raw bytes are kept as `uploads/<sha256>.<ext>` so
anything can be re-imported later; that name appears only once the rows are committed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store import series
from store.errors import BadInputError
from store.importers.aliases import RUN_FACTS
from store.importers.parse import ParsedFile, parse_scanned
from store.importers.scan import scan
from store.importers.wandb import GROUPED
from store.runfacts import write_extra
from store.sql import quote_text
from store.writes import ensure_runs, refresh_summaries, replace_points

if TYPE_CHECKING:
    import duckdb

    from store.core import Store

# Copies not yet committed: `.partial_<host>_<pid>_<token>_<sha256>.<ext>`.
_STAGING = ".partial"


@dataclass
class FileReport:
    """What happened to one file."""

    file: str
    format: str
    sha256: str
    runs: int = 0
    points: int = 0
    skipped: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """What one import call did, file by file."""

    project: str
    files: list[FileReport] = field(default_factory=list)

    @property
    def points(self) -> int:
        return sum(f.points for f in self.files if not f.skipped)

    @property
    def runs(self) -> int:
        return sum(f.runs for f in self.files if not f.skipped)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "project": self.project,
            "points": self.points,
            "runs": self.runs,
            "files": [asdict(f) for f in self.files],
        }


def _options_key(format: str, bits: bool, mapping: dict[str, str] | None) -> str:
    return json.dumps({"format": format, "bits": bits, "mapping": mapping or {}}, sort_keys=True)


def import_files(
    store: Store,
    paths: list[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    project: str = "default",
    format: str = "auto",
    bits: bool = False,
    mapping: dict[str, str] | None = None,
    replicates: str = "refuse",
    schedule: str | None = None,
    imported_by: str | None = None,
) -> ImportReport:
    """Import CSV files into `project`: all of them, or (on any bad input) none.

    ``replicates="keep"`` keeps repeated runs as replicates (`store.importers.extras`);
    ``schedule`` (a schedule's text, checked by the caller) is stored with every run;
    ``imported_by`` (the signed-in user, if any) with every upload row."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise BadInputError("no files to import")
    if not project or not project.strip():
        raise BadInputError("the project name must not be empty")
    store.ensure()
    options = _options_key(format, bits, mapping)
    if replicates != "refuse" or schedule:  # another reading of the same file
        options = json.dumps(
            {**json.loads(options), "replicates": replicates, "schedule": schedule},
            sort_keys=True,
        )
    report = ImportReport(project=project)
    todo: list[tuple[ParsedFile, FileReport]] = []
    scans = [scan(Path(path)) for path in paths]
    # A short read: the lock is not held while files are parsed.
    with store.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT sha256, format FROM uploads WHERE project = ? AND options = ? "
            "AND list_contains(?, sha256)",
            [project, options, [s.sha256 for s in scans]],
        ).fetchall()
    done = dict(rows)
    for path, scanned in zip(paths, scans, strict=True):
        if scanned.sha256 in done:
            report.files.append(
                FileReport(str(path), done[scanned.sha256], scanned.sha256, skipped=True)
            )
            continue
        parsed = parse_scanned(
            scanned, format=format, bits=bits, mapping=mapping, replicates=replicates
        )
        if schedule:
            parsed.facts += [(run, "schedule", schedule) for run in parsed.run_names]
        item = FileReport(
            str(path),
            parsed.format,
            parsed.sha256,
            len(parsed.run_names),
            parsed.n_points,
            warnings=parsed.warnings,
        )
        todo.append((parsed, item))
        report.files.append(item)
    if todo:
        _write(store, project, options, todo, imported_by)
    return report


def _host_tag() -> str:
    return "".join(c for c in socket.gethostname() if c.isalnum()) or "host"


def _staging_name(target: Path) -> Path:
    """A temporary name that says which process on which host is writing it."""
    token = secrets.token_hex(4)
    return target.with_name(f"{_STAGING}_{_host_tag()}_{os.getpid()}_{token}_{target.name}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_uploads(uploads_dir: Path) -> list[Path]:
    """Remove the copies killed imports left behind (this host's, whose process is gone)."""
    removed = []
    host = _host_tag()
    for path in uploads_dir.glob(f"{_STAGING}_*"):
        parts = path.name.split("_", 4)
        mine = len(parts) == 5 and parts[1] == host and parts[2].isdigit()
        if mine and not _pid_alive(int(parts[2])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _write(
    store: Store,
    project: str,
    options: str,
    todo: list[tuple[ParsedFile, FileReport]],
    imported_by: str | None = None,
) -> None:
    """Copy the raw files under temporary names, write the rows, and only once the
    transaction has committed give the copies their names; on any failure remove them.
    A killed import's copies are removed by the next import (`sweep_stale_uploads`)."""
    sweep_stale_uploads(store.uploads_dir)
    staged: list[tuple[Path, Path]] = []
    try:
        kept = []
        for parsed, item in todo:
            ext = parsed.path.suffix.lower() or ".csv"
            target = store.uploads_dir / f"{parsed.sha256}{ext}"
            if not target.exists() and all(t != target for t, _ in staged):
                staged.append((target, _staging_name(target)))
                shutil.copyfile(parsed.path, staged[-1][1])
            kept.append((target, parsed, item))
        with store.transaction() as con:
            for target, parsed, item in kept:
                _write_one(con, project, parsed)
                con.execute(
                    "INSERT INTO uploads (sha256, project, options, original_name, format, "
                    "path, n_runs, n_points, imported_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    [
                        parsed.sha256,
                        project,
                        options,
                        parsed.path.name,
                        parsed.format,
                        target.name,
                        item.runs,
                        item.points,
                        imported_by,
                    ],
                )
    except BaseException:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
        raise
    for target, tmp in staged:
        os.replace(tmp, target)


def _write_one(con: duckdb.DuckDBPyConnection, project: str, parsed: ParsedFile) -> None:
    """Runs first (new ones marked 'imported', facts set), then the points upserted."""
    base = {
        "file": parsed.path.name,
        "sha256": parsed.sha256,
        "format": parsed.format,
        "bits": parsed.bits,
    }
    source = json.dumps(base, sort_keys=True)
    # A W&B group's curve is the mean of its runs: said in the run's source.
    grouped_source = json.dumps({**base, "grouped": GROUPED}, sort_keys=True)
    grouped = "s.grouped" if "grouped" in parsed.runs_table.column_names else "false"
    con.register("_runs_in", parsed.runs_table)
    con.register("_points_in", parsed.points_table)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _new_runs AS SELECT ? AS project, run FROM _runs_in",
        [project],
    )
    ensure_runs(con, "_new_runs", status="imported")
    sets = ", ".join(f"{f} = coalesce(s.{f}, runs.{f})" for f in RUN_FACTS)
    con.execute(
        f"UPDATE runs SET {sets}, source = CASE WHEN {grouped} THEN ? ELSE ? END, "
        "updated_at = now() FROM _runs_in s WHERE runs.project = ? AND runs.run = s.run",
        [grouped_source, source, project],
    )
    con.register("_series_in", parsed.series_table)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _keys AS SELECT {quote_text(project)} AS project, run, "
        "split, family, sampling_ratio FROM _series_in"
    )
    con.unregister("_series_in")
    series.assign(con, "_keys")
    replace_points(
        con,
        f"SELECT {quote_text(project)} AS project, run, split, step, tokens, flops, lr, loss "
        "FROM _points_in",
        status="imported",
    )
    refresh_summaries(con, "_new_runs")
    write_extra(con, project, parsed.facts)  # the file's other columns, as run facts
    con.unregister("_runs_in")
    con.unregister("_points_in")
