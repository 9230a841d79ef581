"""Sweeps: a TOML spec expands to a list of runs; finished runs are skipped.

    [sweep]
    name = "size-cpu"              # run names start with this
    project = "scaling"            # default project (the CLI's --project overrides)

    [base]                         # TrainConfig fields shared by every run
    data = "markov:vocab=256"
    steps = 600

    [grid]                         # cartesian product over TrainConfig fields
    preset = ["cpu/0", "cpu/1", "cpu/2"]
    seed = [0]

    [[runs]]                       # optional: explicit runs (each merged over [base])
    preset = "cpu-small"

A run's name is the sweep name plus the values that vary, so adding a size to the grid
keeps every existing run's name (and its finished status). Runs go one after another on
one device; with several GPUs, one run per GPU in parallel subprocesses. Interrupted runs
resume from their last checkpoint when the sweep is started again.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from trainers.runlock import mark_stale
from trainers.stopping import StopRequest
from trainers.train import TrainConfig

SWEEPS_DIR = Path(__file__).parent / "sweeps"
_FIELDS = {f.name for f in fields(TrainConfig)}


def find_spec(name_or_path: str | Path) -> Path:
    """A spec path, or the name of a shipped spec (`demo-cpu`, `size-cpu.toml`)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = SWEEPS_DIR / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if shipped.exists():
        return shipped
    known = ", ".join(sorted(p.stem for p in SWEEPS_DIR.glob("*.toml")))
    raise FileNotFoundError(f"no sweep spec {str(name_or_path)!r}; shipped specs: {known}")


def _compact(value: Any) -> str:
    """A short, file-name-safe label for a grid value (long ones end in a hash)."""
    is_table = isinstance(value, dict)
    text = ",".join(f"{k}={v}" for k, v in value.items()) if is_table else str(value)
    text = re.sub(r"[^A-Za-z0-9.=-]+", "-", text).strip("-")
    if len(text) > 40:
        digest = hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:6]
        text = f"{text[:32]}-{digest}"
    return text


def _check_keys(d: dict[str, Any], where: str) -> None:
    unknown = set(d) - _FIELDS - {"name"}
    if unknown:
        raise ValueError(
            f"sweep {where}: unknown fields {sorted(unknown)}; known {sorted(_FIELDS)}"
        )


def expand(
    spec: dict[str, Any], project: str | None = None, store: str | None = None
) -> list[TrainConfig]:
    """All runs of a parsed spec, as TrainConfigs (in grid order)."""
    meta = spec.get("sweep", {})
    name = meta.get("name", "sweep")
    base = dict(spec.get("base", {}))
    grid = dict(spec.get("grid", {}))
    _check_keys(base, "[base]")
    _check_keys(grid, "[grid]")
    common = {**base, "project": project or meta.get("project", "default"), "store": store}
    configs: list[TrainConfig] = []
    keys = list(grid)
    # No grid: the base itself is one run, unless explicit [[runs]] list them all.
    combos = itertools.product(*(grid[k] for k in keys)) if keys else [()]
    for values in combos if keys or not spec.get("runs") else []:
        combo = dict(zip(keys, values, strict=True))
        label = "_".join(_compact(v) for v in values) or "run"
        configs.append(_config({**common, **combo}, f"{name}-{label}"))
    for i, extra in enumerate(spec.get("runs", [])):
        _check_keys(extra, f"[[runs]] #{i}")
        run_name = extra.get("name") or f"{name}-{i:02d}-" + "_".join(
            _compact(v) for k, v in extra.items() if k != "name"
        )
        configs.append(
            _config({**common, **{k: v for k, v in extra.items() if k != "name"}}, run_name)
        )
    names = [c.run for c in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"sweep {name!r}: run names collide: {names}")
    return configs


def _config(values: dict[str, Any], run: str) -> TrainConfig:
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    return replace(TrainConfig(), **values, run=run)


def load(
    path: str | Path, project: str | None = None, store: str | None = None
) -> list[TrainConfig]:
    with open(find_spec(path), "rb") as fh:
        spec = tomllib.load(fh)
    return expand(spec, project=project, store=store)


def finished_runs(store: str | None, project: str) -> set[str]:
    """Names of runs the store already records as finished (inbox facts included)."""
    if store is None:
        return set()
    from store.core import Store
    from store.queries import list_runs

    runs = list_runs(Store(store), project)
    if runs.empty:
        return set()
    return set(runs.loc[runs["status"] == "finished", "run"])


def run_sweep(
    configs: list[TrainConfig],
    on_run: Callable[[TrainConfig, str], None] | None = None,
    gpus: int | None = None,
    stop: StopRequest | None = None,
    **train_kwargs: Any,
) -> dict[str, str]:
    """Train every config not yet finished. Returns {run: 'skipped' | status}.

    Runs that the store shows `running` but whose trainer died are first recorded
    `interrupted` (`trainers.runlock.mark_stale`), then resumed like any other unfinished
    run. SIGINT / SIGTERM stop the run in progress cleanly and start no other; runs not
    reached are absent from the result.
    """
    if not configs:
        return {}
    store, project = configs[0].store, configs[0].project
    if store is not None:
        mark_stale(store, project, [c.run for c in configs])
    done = finished_runs(store, project)
    todo = [c for c in configs if c.run not in done]
    result = {c.run: "skipped" for c in configs if c.run in done}
    for c in configs:
        if c.run in done and on_run:
            on_run(c, "skipped")
    gpus = _gpu_count() if gpus is None else gpus
    with contextlib.ExitStack() as scope:
        if stop is None:
            stop = scope.enter_context(StopRequest())
        if gpus > 1:
            result.update(_run_on_gpus(todo, gpus, on_run, stop))
            return result
        from trainers.train import train

        for c in todo:
            if stop.requested:
                break
            if on_run:
                on_run(c, "start")
            summary = train(c, stop=stop, **train_kwargs)
            result[c.run] = summary.status
            if on_run:
                on_run(c, summary.status)
    return result


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def config_json(c: TrainConfig) -> str:
    from dataclasses import asdict

    return json.dumps(asdict(c))


def _run_on_gpus(
    todo: list[TrainConfig],
    gpus: int,
    on_run: Callable[[TrainConfig, str], None] | None,
    stop: StopRequest,
) -> dict[str, str]:
    """One subprocess per GPU, each pinned by CUDA_VISIBLE_DEVICES, until all runs are done.

    On a stop request no new run starts and each running one is sent SIGTERM (once), so
    it checkpoints and records `interrupted` as a single-device run would.
    """
    import time

    result: dict[str, str] = {}
    queue, running = list(todo), {}
    forwarded = False
    while queue or running:
        while queue and len(running) < gpus and not stop.requested:
            free = next(g for g in range(gpus) if g not in {g2 for g2, _ in running.values()})
            c = queue.pop(0)
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(free)}
            cmd = [sys.executable, "-m", "trainers", "--config", config_json(c)]
            running[c.run] = (free, (c, subprocess.Popen(cmd, env=env)))
            if on_run:
                on_run(c, f"start on GPU {free}")
        if stop.requested and not forwarded:
            for _, (_, proc) in running.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            forwarded = True
        for run, (_, (c, proc)) in list(running.items()):
            if proc.poll() is not None:
                result[run] = status_of_exit(proc.returncode)
                del running[run]
                if on_run:
                    on_run(c, result[run])
        if not running and stop.requested:
            break
        if running:
            time.sleep(1.0)
    return result


def status_of_exit(returncode: int) -> str:
    """A `python -m trainers` worker's run status from its exit code."""
    if returncode == 0:
        return "finished"
    stopped = {128 + signal.SIGINT, 128 + signal.SIGTERM, -signal.SIGINT, -signal.SIGTERM}
    # Killed outright (-9): its run is left `running` until mark_stale finds it.
    return "interrupted" if returncode in stopped or returncode < 0 else "failed"
