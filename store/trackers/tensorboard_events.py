"""TensorBoard event files (`events.out.tfevents.*`): a folder of runs, nested or flat.

A run is the folder that holds event files, named by its path below the folder given
(`runs/a/lr3e-4` given `runs/` is run `a/lr3e-4`; the folder's own name when the event
files lie in it). Several event files of one run (a restarted job) are read in name
order, which is their creation order. Read with the `tensorboard` package's own loader
(`pip install 'scalinglab[tensorboard]'`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from store.errors import BadInputError
from store.trackers.optional import require
from store.trackers.series import TrackerRun

PATTERN = "events.out.tfevents.*"
EXTRA = "tensorboard"


def is_event_file(path: Path) -> bool:
    return path.is_file() and path.name.startswith("events.out.tfevents.")


def event_files(path: Path) -> list[Path]:
    """Every event file at or below `path`, in a stable order."""
    if is_event_file(path):
        return [path]
    return sorted((p for p in path.rglob(PATTERN) if p.is_file()), key=_file_order)


def _file_order(path: Path) -> tuple[str, list[tuple[int, str]]]:
    """By folder, then name with its numbers compared as numbers: a writer names its
    files `events.out.tfevents.<time>.<host>.<pid>.<counter>`, so this is their age."""
    parts = re.split(r"(\d+)", path.name)
    return str(path.parent), [(int(p), "") if p.isdigit() else (0, p) for p in parts if p]


def has_event_files(path: Path) -> bool:
    return is_event_file(path) or (path.is_dir() and next(path.rglob(PATTERN), None) is not None)


def run_name(folder: Path, root: Path) -> str:
    """The run of the event files in `folder`, given the folder `root` the user named."""
    if folder == root or not folder.is_relative_to(root):
        return folder.resolve().name
    return folder.relative_to(root).as_posix()


def read_runs(path: Path) -> list[TrackerRun]:
    """Every run at or below `path`, with its scalar series (BadInputError on bad files)."""
    files = event_files(path)
    if not files:
        raise BadInputError(f"no TensorBoard event files ({PATTERN}) here", file=str(path))
    root = path if path.is_dir() else path.parent
    runs: dict[Path, TrackerRun] = {}
    for file in files:
        run = runs.get(file.parent)
        if run is None:
            where = str(file.parent)
            run = runs[file.parent] = TrackerRun(run_name(file.parent, root), where)
        read_file_into(file, run)
    return list(runs.values())


def read_file_into(file: Path, run: TrackerRun) -> int:
    """Add one event file's scalars to `run`; returns the number of records read."""
    reader = EventReader(file)
    count = reader.read_into(run)
    if count == 0:
        raise BadInputError("not a TensorBoard event file: no record could be read", file=str(file))
    return count


class EventReader:
    """Reads an event file's records with TensorBoard's record reader, and again later
    from where it stopped (a live file grows). A record cut off at the end (still being
    written) is retried on the next read; a record that fails its checksum is refused."""

    def __init__(self, file: Path) -> None:
        stub = require("tensorboard.compat.tensorflow_stub.pywrap_tensorflow", EXTRA)
        self._errors = require("tensorboard.compat.tensorflow_stub.errors", EXTRA)
        self._event = require("tensorboard.compat.proto.event_pb2", EXTRA).Event
        self.file = file
        self.records = 0
        try:
            self._reader = stub.PyRecordReader_New(str(file), 0, None)
        except self._errors.OpError as err:
            raise BadInputError(f"cannot read this event file: {err}", file=str(file)) from None

    def read_into(self, run: TrackerRun) -> int:
        """Add the scalars of the records not read yet to `run`; returns how many."""
        count = 0
        for event in self._new_events():
            count += 1
            for tag, value, is_f32 in scalars(event):
                run.add(tag, event.step, value, is_f32)
        run.settle()
        return count

    def _new_events(self) -> Iterator[Any]:
        errors = self._errors
        while True:
            try:
                self._reader.GetNext()
            except errors.OutOfRangeError:
                return
            except errors.DataLossError as err:
                if "crc32" in str(err):  # not a cut-off tail: the bytes are wrong
                    raise BadInputError(
                        f"damaged TensorBoard event file: record {self.records + 1} fails "
                        "its checksum",
                        file=str(self.file),
                    ) from None
                return  # cut off while being written: read again next time
            try:
                event = self._event.FromString(self._reader.record())
            except Exception as err:  # protobuf's DecodeError
                raise BadInputError(
                    f"damaged TensorBoard event file: record {self.records + 1} is not an "
                    f"event ({type(err).__name__})",
                    file=str(self.file),
                ) from None
            self.records += 1
            yield event


def scalars(event: Any) -> Iterator[tuple[str, float, bool]]:
    """(tag, value, is float32) of each scalar: a `simple_value`, or a scalar tensor."""
    if event.WhichOneof("what") != "summary":
        return
    for value in event.summary.value:
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            yield value.tag, value.simple_value, True
        elif kind == "tensor" and value.metadata.plugin_data.plugin_name == "scalars":
            yield value.tag, _tensor_scalar(value.tensor), False


def _tensor_scalar(tensor: Any) -> float:
    util = require("tensorboard.util.tensor_util", EXTRA)
    array = util.make_ndarray(tensor)
    if array.size != 1:
        return float("nan")
    return float(array.reshape(()).item())
