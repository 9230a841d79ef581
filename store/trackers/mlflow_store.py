"""MLflow local tracking stores: an `mlruns/` file store, or a SQLite backend (`.db`).

Read through MLflow's own client (`MlflowClient`: `search_experiments`, `search_runs`,
`get_metric_history`; `pip install 'scalinglab[mlflow]'`), never by parsing its files, so
whatever MLflow can read is read as MLflow reads it. A run is named `<experiment>/<run
name>` (the run id is added where two runs of an experiment share a name), so a store
read again later, with more experiments in it, keeps its run names. Each metric's
history is a series (roles as for the other trackers: `train_loss`, `val_loss`, `lr`...);
params become run facts (`store.trackers.params`). Deleted runs and experiments are
left out. The user's store is only read: a SQLite file is checked to be MLflow's first
(its tables), so the client never creates tables in some other database.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from store.errors import BadInputError
from store.trackers.mlflow_view import complete_view
from store.trackers.optional import require
from store.trackers.params import param_facts
from store.trackers.series import TrackerRun
from store.trackers.sqlitefile import sqlite_tables
from store.trackers.tags import detect_role

EXTRA = "mlflow"
_MLFLOW_TABLES = {"experiments", "runs", "metrics", "params"}
_PAGE = 1000  # runs per `search_runs` page (MLflow's own default)
_SKIP = {"artifacts", ".trash"}  # never read: files logged by the user, deleted runs


def sqlite_uri_path(text: str) -> Path | None:
    """The file of a `sqlite:///relative.db` or `sqlite:////absolute.db` URI, else None."""
    prefix = "sqlite:///"
    return Path(text[len(prefix) :]) if text.startswith(prefix) else None


def is_sqlite_store(path: Path) -> bool:
    tables = sqlite_tables(path)
    return set(tables) >= _MLFLOW_TABLES and "run_uuid" in tables.get("metrics", set())


def _is_experiment(folder: Path) -> bool:
    meta = folder / "meta.yaml"
    if not meta.is_file():
        return False
    with meta.open(encoding="utf-8", errors="replace") as fh:
        head = fh.read(4096)
    return "experiment_id:" in head and "run_id:" not in head


def file_store_root(path: Path) -> Path | None:
    """The `mlruns/` folder at `path` (or `path/mlruns`), else None."""
    for root in (path, path / "mlruns"):
        if root.is_dir() and any(_is_experiment(c) for c in root.iterdir() if c.is_dir()):
            return root
    return None


def has_store(path: Path) -> bool:
    return is_sqlite_store(path) if path.is_file() else file_store_root(path) is not None


def store_files(path: Path) -> list[Path]:
    """The files whose bytes are the store's runs (artifacts and the trash left out)."""
    if path.is_file():
        return [path]
    root = file_store_root(path)
    if root is None:
        return []
    return sorted(
        p for p in root.rglob("*") if p.is_file() and not _SKIP & set(p.relative_to(root).parts)
    )


def read_runs(path: Path, tags: dict[str, str | None] | None = None) -> list[TrackerRun]:
    """Every active run of the store at `path`: the histories of its loss, eval and LR
    metrics (or of the `tags` asked for) and its params as facts."""
    if path.is_file():
        if not is_sqlite_store(path):
            raise BadInputError(
                "not an MLflow SQLite store (no experiments, runs, metrics and params tables)",
                file=str(path),
            )
        return _read_all(f"sqlite:///{path.resolve()}", str(path), path, tags)
    root = file_store_root(path)
    if root is None:
        raise BadInputError(
            "no MLflow file store here (mlruns/<experiment>/meta.yaml)", file=str(path)
        )
    experiments = [c for c in root.iterdir() if c.is_dir() and _is_experiment(c)]
    # A zip without folder entries lost the empty folders MLflow needs: read a mirror.
    with complete_view(root, experiments) as view:
        return _read_all(view.resolve().as_uri(), str(root), path, tags)


def _read_all(
    uri: str, label: str, path: Path, tags: dict[str, str | None] | None
) -> list[TrackerRun]:
    with _client(uri, label) as client:
        found = _search(client, label)
        names = _run_names([(exp.name, run) for exp, run in found])
        return [
            _read_run(client, name, run, _where(path, label, run, name), tags)
            for name, (_, run) in zip(names, found, strict=True)
        ]


@contextmanager
def _client(uri: str, label: str) -> Iterator[Any]:
    """An `MlflowClient` on `uri`, quiet, with the file store allowed (MLflow 3 refuses
    it unless asked: it is in maintenance mode, yet what a local `mlruns/` is)."""
    tracking = require("mlflow.tracking", EXTRA)
    before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    quiet = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.WARNING)
    try:
        try:
            client = tracking.MlflowClient(tracking_uri=uri)
        except Exception as err:  # MlflowException, SQLAlchemy's errors
            raise BadInputError(
                f"cannot open this MLflow store: {_first_line(err)}", file=label
            ) from None
        yield client
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
        if before is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = before


def _search(client: Any, label: str) -> list[tuple[Any, Any]]:
    """(experiment, run) of every active run, oldest first within each experiment."""
    found = []
    try:
        for exp in sorted(client.search_experiments(), key=lambda e: str(e.experiment_id)):
            token = None
            while True:
                page = client.search_runs(
                    [exp.experiment_id],
                    max_results=_PAGE,
                    order_by=["attributes.start_time ASC"],
                    page_token=token,
                )
                found += [(exp, run) for run in page]
                token = page.token
                if not token:
                    break
    except Exception as err:
        located = _damaged_metric(Path(label), err)
        raise located or BadInputError(
            f"cannot list this store's runs: {_first_line(err)}", file=label
        ) from None
    if not found:
        raise BadInputError("an MLflow store without runs", file=label)
    return found


def _run_names(found: list[tuple[str, Any]]) -> list[str]:
    names = [f"{exp}/{run.info.run_name or run.info.run_id}" for exp, run in found]
    return [
        f"{name}-{run.info.run_id[:8]}" if names.count(name) > 1 else name
        for name, (_, run) in zip(names, found, strict=True)
    ]


def _where(path: Path, label: str, run: Any, name: str) -> str:
    """Where a run's data lie, for messages: its folder in a file store, else the file."""
    if path.is_file():
        return f"{label}, run {name!r}"
    return f"{Path(label) / run.info.experiment_id / run.info.run_id}, run {name!r}"


def _read_run(
    client: Any, name: str, run: Any, where: str, tags: dict[str, str | None] | None
) -> TrackerRun:
    out = TrackerRun(name, where)
    try:
        out.facts.update(param_facts(run.data.params))
    except BadInputError as err:
        raise BadInputError(f"params: {err.message}", file=where) from None
    for key in sorted(run.data.metrics):
        if not (detect_role(key) or (tags and key in tags)):
            out.series.setdefault(key, _empty())  # named in messages, never read
            continue
        try:
            history = client.get_metric_history(run.info.run_id, key)
        except Exception as err:
            located = _damaged_metric(Path(where.rsplit(", run ", 1)[0]).parents[1], err)
            raise located or BadInputError(
                f"metric {key!r}: cannot be read ({_first_line(err)})", file=where
            ) from None
        # Oldest first, as written (a step logged again keeps its last value).
        for metric in sorted(history, key=lambda m: m.timestamp):
            out.add(key, int(metric.step), float(metric.value))
    return out


def _empty() -> Any:
    from store.trackers.series import Series

    return Series()


def _damaged_metric(root: Path, err: Exception) -> BadInputError | None:
    """In a file store, the first metric file with a line MLflow cannot read, located."""
    if not root.is_dir():
        return None
    for file in sorted(root.glob("*/*/metrics/**/*")):
        line = _bad_line(file) if file.is_file() else None
        if line is not None:
            experiment, run, *_ = file.relative_to(root).parts
            run_folder = root / experiment / run
            key = file.relative_to(run_folder / "metrics").as_posix()
            return BadInputError(
                f"metric {key!r} of run {run_folder.name}: expected 'timestamp value step' "
                f"lines ({_first_line(err)})",
                file=str(file),
                line=line,
            )
    return None


def _bad_line(file: Path) -> int | None:
    """The first line of a file-store metric file that is not `timestamp value [step]`."""
    with file.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            parts = line.split()
            try:
                if not 2 <= len(parts) <= 4:
                    return number
                int(parts[0]), float(parts[1])
                if len(parts) > 2:
                    int(parts[2])
            except ValueError:
                return number
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
