"""`scalinglab train` and `scalinglab sweep`.

`trainers` (and so torch) is imported inside the commands only: the CLI must start, and
every other verb must work, in an image without torch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import StoreOption, fail

_DEF = "default"


def _progress_callback(total: int, label: str) -> tuple[Any, Any]:
    """A rich progress bar (loss, tokens/s, ETA) and the per-step callback that feeds it."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("step {task.completed:>6.0f}/{task.total:.0f}"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[tps]} tok/s"),
        TimeRemainingColumn(),
        transient=False,
    )
    task = progress.add_task(label, total=total, loss="-", tps="-")
    state = {"t": time.perf_counter(), "tokens": 0.0}

    def on_step(step: int, metrics: dict[str, float]) -> None:
        now = time.perf_counter()
        tokens = metrics.get("tokens", 0.0)
        rate = (tokens - state["tokens"]) / max(now - state["t"], 1e-9)
        state.update(t=now, tokens=tokens)
        progress.update(
            task,
            completed=step + 1,
            loss=f"{metrics.get('loss/train', float('nan')):.4f}",
            tps=f"{rate:,.0f}",
        )

    return progress, on_step


def _torchrun(nproc: int, config: dict[str, Any]) -> int:
    """Relaunch this run under torchrun with nproc processes (DDP, rank 0 writes)."""
    runner = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    cmd = [
        runner,
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "trainers",
        "--config",
        json.dumps(config),
    ]
    return subprocess.call(cmd, env=os.environ.copy())


def train_cmd(
    preset: Annotated[
        str, typer.Option(help="Preset (cpu-tiny, gpt-124m, ...) or cpu/3.")
    ] = "cpu-tiny",
    data: Annotated[
        str, typer.Option(help="Data spec, e.g. markov:vocab=256,seed=0.")
    ] = "markov:vocab=256",
    schedule: Annotated[
        str, typer.Option(help="LR schedule, e.g. cosine:peak=3e-3,warmup=20.")
    ] = "",
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 200,
    store: StoreOption = None,
    project: Annotated[str, typer.Option(help="Project the run belongs to.")] = _DEF,
    run: Annotated[str, typer.Option(help="Run name (default: from preset, data, seed).")] = "",
    lr: Annotated[float, typer.Option(help="Peak LR of the default cosine schedule.")] = 3e-3,
    batch_size: Annotated[int, typer.Option(help="Sequences per step, all ranks.")] = 32,
    micro_batch: Annotated[int, typer.Option(help="Sequences per micro-batch (0: all).")] = 0,
    seq_len: Annotated[int, typer.Option(help="Tokens per sequence.")] = 64,
    eval_every: Annotated[int, typer.Option(help="Evaluate every N steps (0: at the end).")] = 50,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps (0: never).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the init (the data has its own).")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    threads: Annotated[
        int, typer.Option(help="CPU threads (0: 1 on CPU, the fastest on a shared machine).")
    ] = 0,
    model: Annotated[str, typer.Option(help='Model overrides as JSON, e.g. {"tied": false}.')] = "",
    nproc: Annotated[int, typer.Option(help="Processes for DDP via torchrun (1: none).")] = 1,
    resume: Annotated[bool, typer.Option(help="Resume from the run's checkpoint.")] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train one model, streaming its loss curve into the store."""
    from store.paths import resolve_root

    config = {
        "preset": preset,
        "data": data,
        "schedule": schedule,
        "steps": steps,
        "store": str(resolve_root(store)),
        "project": project,
        "run": run,
        "lr": lr,
        "batch_size": batch_size,
        "micro_batch": micro_batch,
        "seq_len": seq_len,
        "eval_every": eval_every,
        "checkpoint_every": checkpoint_every,
        "seed": seed,
        "device": device,
        "threads": threads,
        "resume": resume,
        "model": json.loads(model) if model else {},
    }
    if nproc > 1:
        raise typer.Exit(_torchrun(nproc, config))
    from trainers.train import TrainConfig, train

    try:
        cfg = TrainConfig(**config)
        bar, on_step = _progress_callback(steps, cfg.run_name()) if progress else (None, None)
        if bar is not None:
            with bar:
                summary = train(cfg, on_step=on_step)
        else:
            summary = train(cfg)
    except (ValueError, KeyError, FileNotFoundError) as err:
        fail(str(err))
    print(json.dumps(asdict(summary)))


def sweep_cmd(
    spec: Annotated[str, typer.Argument(help="Sweep spec: a TOML path or a shipped name.")],
    store: StoreOption = None,
    project: Annotated[str | None, typer.Option(help="Project (default: the spec's).")] = None,
    dry_run: Annotated[bool, typer.Option(help="List the runs and exit.")] = False,
) -> None:
    """Train every run of a sweep spec not yet finished in the store (resumable)."""
    from store.paths import resolve_root
    from trainers import sweep

    try:
        configs = sweep.load(spec, project=project, store=str(resolve_root(store)))
    except (ValueError, FileNotFoundError, KeyError) as err:
        fail(str(err))
    except Exception as err:  # tomllib.TOMLDecodeError and friends
        fail(f"{spec}: {err}")
    if dry_run:
        for c in configs:
            print(f"{c.run}\t{c.preset}\t{c.data}\t{c.schedule or 'default'}\t{c.steps}")
        return

    def on_run(c: Any, status: str) -> None:
        print(f"[sweep] {c.project}/{c.run}: {status}", flush=True)

    result = sweep.run_sweep(configs, on_run=on_run)
    failed = [r for r, s in result.items() if s not in ("finished", "skipped")]
    print(json.dumps(result))
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `train` and `sweep` to the app."""
    app.command("train")(train_cmd)
    app.command("sweep")(sweep_cmd)
