"""W&B runs: offline run folders (`wandb/offline-run-*/run-<id>.wandb`) and history rows.

A run file's records are read by `wandb_log` and decoded with wandb's own protobuf
classes (`pip install 'scalinglab[wandb]'`): the run record (name, config), config
updates, history rows (`_step` plus each logged metric) and the exit record. From the
history rows onward the path is the one a project read through the W&B API takes
(`run.scan_history()` rows, `run.config`): `run_from_rows`. Config values that say the
model's size, the tokens, the LR or the batch size become run facts (`params`, `tokens`,
`peak_lr` (`lr` is a point's column), `batch_size`); the whole config is kept as `config`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store.errors import BadInputError
from store.importers.aliases import canonical, normalise
from store.trackers.optional import require
from store.trackers.series import TrackerRun
from store.trackers.wandb_log import LogReader

EXTRA = "wandb"
_NOT_SIZES = {"n", "size", "d", "parameters"}  # too vague as config keys
_BATCH = {
    "batch_size",
    "bs",
    "global_batch_size",
    "train_batch_size",
    "total_batch_size",
    "per_device_train_batch_size",
}
_TOKENS = {"max_tokens", "total_tokens", "train_tokens", "num_train_tokens"}


def run_files(path: Path) -> list[Path]:
    """Every W&B run file at or below `path` (a `.wandb` file, a run folder, `wandb/`)."""
    if path.is_file():
        return [path] if path.suffix == ".wandb" else []
    if not path.is_dir():
        return []
    # `wandb/latest-run` links to the newest run folder: it is read once, by its own name.
    found = {
        p.resolve(): p
        for p in sorted(path.rglob("run-*.wandb"))
        if p.is_file() and "latest-run" not in p.relative_to(path).parts
    }
    return sorted(found.values())


def has_runs(path: Path) -> bool:
    return bool(run_files(path))


@dataclass
class RunState:
    """What a run file has said so far (kept between reads while watching)."""

    run_id: str = ""
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)  # new rows since last taken
    exit_code: int | None = None
    has_run: bool = False  # the run record (name, config) has been read


class RunFileReader:
    """Reads a run file's records into a `RunState`, again later as the file grows."""

    def __init__(self, file: Path) -> None:
        self._pb = require("wandb.proto.wandb_internal_pb2", EXTRA)
        self.file = file
        self.log = LogReader(file)
        self.state = RunState(run_id=_id_from_name(file))

    def read(self) -> RunState:
        for data in self.log.read():
            record = self._pb.Record()
            try:
                record.ParseFromString(data)
            except Exception as err:  # protobuf's DecodeError
                raise BadInputError(
                    f"damaged W&B run file: record {self.log.records} is not a W&B record "
                    f"({type(err).__name__})",
                    file=str(self.file),
                ) from None
            self._take(record)
        return self.state

    def _take(self, record: Any) -> None:
        kind = record.WhichOneof("record_type")
        state = self.state
        if kind == "run":
            state.has_run = True
            state.run_id = record.run.run_id or state.run_id
            state.name = record.run.display_name or state.name
            _update(state.config, record.run.config.update, self.file)
        elif kind == "config":
            _update(state.config, record.config.update, self.file)
            for item in record.config.remove:
                state.config.pop(_key(item), None)
        elif kind == "history":
            state.rows.append({_key(item): _json(item, self.file) for item in record.history.item})
        elif kind == "exit":
            state.exit_code = int(record.exit.exit_code)


def read_runs(path: Path) -> list[TrackerRun]:
    """Every run at or below `path`, with its series and facts (BadInputError if bad)."""
    files = run_files(path)
    if not files:
        raise BadInputError(
            "no W&B run files (wandb/offline-run-*/run-*.wandb) here", file=str(path)
        )
    states = []
    for file in files:
        reader = RunFileReader(file)
        state = reader.read()
        if reader.log.records == 0:
            raise BadInputError("a W&B run file with no record in it", file=str(file))
        states.append((file, state))
    names = run_names([state for _, state in states])
    return [
        run_from_rows(name, state.rows, state.config, where=str(file.parent))
        for name, (file, state) in zip(names, states, strict=True)
    ]


def run_names(states: list[RunState]) -> list[str]:
    """Display names, with the run id added where two runs share one."""
    names = [state.name or state.run_id for state in states]
    return [
        f"{name}-{state.run_id}" if names.count(name) > 1 and state.run_id else name
        for name, state in zip(names, states, strict=True)
    ]


def run_from_rows(
    name: str,
    rows: Iterable[Mapping[str, Any]],
    config: Mapping[str, Any],
    *,
    where: str,
    run: TrackerRun | None = None,
) -> TrackerRun:
    """A run from history rows (`_step` and metrics, as `scan_history()` yields them)
    and its config; adds to `run` when given (a watched run's new rows)."""
    if run is None:
        run = TrackerRun(name, where)
        run.facts.update(config_facts(config))
    for index, row in enumerate(rows):
        step = row.get("_step", index)
        if isinstance(step, bool) or not isinstance(step, int | float) or step != int(step):
            raise BadInputError(
                f"history row {index + 1}: _step {step!r} is not a step", file=where
            )
        for key, value in row.items():
            if key.startswith("_") or isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                run.add(key, int(step), float(value))
    return run


_COUNTS = ("params", "unique_tokens")  # whole numbers, stored as BIGINT


def config_facts(config: Mapping[str, Any]) -> dict[str, Any]:
    """Run facts from a W&B config: params, tokens, unique_tokens, lr, batch_size, and the
    config."""
    flat = dict(_flatten(config))
    facts: dict[str, Any] = {}
    for key, value in flat.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value) or value <= 0:
            continue
        fact = _fact_of(key.rsplit(".", 1)[-1])
        if fact is not None and fact not in facts:
            facts[fact] = int(value) if fact in _COUNTS and value == int(value) else value
    for count in _COUNTS:
        if count in facts and not isinstance(facts[count], int):
            del facts[count]  # a count that is not whole is not a parameter or token count
    if flat:
        facts["config"] = json.dumps(flat, sort_keys=True, default=str)
    return facts


def _fact_of(key: str) -> str | None:
    norm = normalise(key)
    if norm in _NOT_SIZES:
        return None
    if norm in _BATCH:
        return "batch_size"
    if norm in _TOKENS:
        return "tokens"
    target = canonical(key)
    if target == "lr":
        return "peak_lr"
    return target if target in ("params", "tokens", "unique_tokens") else None


def _flatten(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in config.items():
        if str(key).startswith("_wandb"):
            continue
        if isinstance(value, Mapping) and set(value) >= {"value"} and len(value) <= 2:
            value = value["value"]  # config.yaml's {value: ..., desc: ...}
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _update(config: dict[str, Any], items: Any, file: Path) -> None:
    for item in items:
        config[_key(item)] = _json(item, file)


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def _json(item: Any, file: Path) -> Any:
    try:
        return json.loads(item.value_json)
    except ValueError:
        raise BadInputError(
            f"damaged W&B run file: {_key(item)!r} holds no JSON value", file=str(file)
        ) from None


def _id_from_name(file: Path) -> str:
    stem = file.stem
    return stem[4:] if stem.startswith("run-") else stem
