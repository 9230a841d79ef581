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


def _display(label: str, total_runs: int, progress: bool) -> Any:
    """The progress display on stderr (stdout keeps the JSON summary for scripts)."""
    from trainers.progress import NoDisplay, make_display

    return make_display(label, total_runs) if progress else NoDisplay()


def _model_overrides(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError as err:
        fail(f"--model is not JSON: {err}")
    if not isinstance(value, dict):
        fail(f"--model must be a JSON object, got {text!r}")
    return value


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
    progress: Annotated[bool, typer.Option(help="Show progress on stderr.")] = True,
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
        "model": _model_overrides(model),
    }
    if nproc > 1:
        raise typer.Exit(_torchrun(nproc, config))
    from trainers.stopping import StopRequest

    # Installed before torch is imported, so an early Ctrl-C is a clean stop as well.
    with StopRequest() as stop:
        summary = _train_one(config, progress, stop)
    print(json.dumps(asdict(summary)))
    if summary.status == "interrupted":
        again = "run the same command again to resume from its last checkpoint"
        if not checkpoint_every:
            again = "it had no checkpoint (--checkpoint-every N), so a new start begins at 0"
        print(
            f"interrupted after step {summary.start_step + summary.steps_done}; {again}",
            file=sys.stderr,
        )
        raise typer.Exit(stop.exit_code)
    if summary.status != "finished":
        raise typer.Exit(1)


def _train_one(config: dict[str, Any], progress: bool, stop: Any) -> Any:
    if stop.requested:
        fail("interrupted before the first step", stop.exit_code)
    from trainers.train import TrainConfig, train

    try:
        cfg = TrainConfig(**config)
    except (ValueError, TypeError) as err:
        fail(str(err))
    display = _display("train", 1, progress)
    display.run_started(f"{cfg.project}/{cfg.run_name()}", cfg.steps)
    try:
        summary = train(cfg, on_step=display.step, stop=stop)
    except (ValueError, KeyError, FileNotFoundError) as err:
        display.close()
        fail(str(err))
    except BaseException:
        display.close()
        raise
    display.run_ended(f"{cfg.project}/{cfg.run_name()}", summary.status)
    display.close()
    return summary


def sweep_cmd(
    spec: Annotated[
        str,
        typer.Argument(help="Sweep spec: a TOML path or a shipped name.", metavar="SPEC"),
    ],
    store: StoreOption = None,
    project: Annotated[str | None, typer.Option(help="Project (default: the spec's).")] = None,
    dry_run: Annotated[bool, typer.Option(help="List the runs and exit.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress on stderr.")] = True,
) -> None:
    """Train every run of a sweep spec not yet finished in the store (resumable)."""
    from store.paths import resolve_root
    from trainers.stopping import StopRequest

    with StopRequest() as stop:
        from trainers import sweep

        try:
            configs = sweep.load(spec, project=project, store=str(resolve_root(store)))
        except (ValueError, FileNotFoundError, KeyError) as err:  # TOMLDecodeError is a ValueError
            fail(str(err))
        except TypeError as err:  # a TOML value of the wrong kind for its key
            fail(f"{spec}: {err}")
        if dry_run:
            for c in configs:
                print(f"{c.run}\t{c.preset}\t{c.data}\t{c.schedule or 'default'}\t{c.steps}")
            return
        if stop.requested:
            fail("interrupted before the first run", stop.exit_code)
        name = configs[0].project if configs else spec
        display = _display(f"sweep {name}", len(configs), progress)

        def on_run(c: Any, status: str) -> None:
            run = f"{c.project}/{c.run}"
            if status == "skipped":
                display.run_skipped(run)
            elif status.startswith("start"):
                display.run_started(run, c.steps, note=status.removeprefix("start").strip())
            else:
                display.run_ended(run, status)

        try:
            result = sweep.run_sweep(configs, on_run=on_run, stop=stop, on_step=display.step)
        finally:
            display.close()
    print(json.dumps(result))
    if stop.requested:
        done = sum(s in ("finished", "skipped") for s in result.values())
        print(
            f"sweep interrupted: {done}/{len(configs)} runs done; run the same command again "
            "to resume",
            file=sys.stderr,
        )
        raise typer.Exit(stop.exit_code)
    if any(s not in ("finished", "skipped") for s in result.values()):
        raise typer.Exit(1)


def _sweep_help() -> str:
    """The command's help: what it does, then the shipped specs (read without torch)."""
    from trainers.sweeps import shipped

    lines = [
        "Train every run of a sweep spec not yet finished in the store (resumable).",
        "",
        "SPEC is a TOML file or the name of a shipped spec:",
        "",
    ]
    specs = shipped()
    width = max((len(name) for name, _, _ in specs), default=0)
    for name, description, runs in specs:
        count = f"{runs} runs"
        lines.append(f"{name:<{width}}  {count:>7}  {description}")
    return "\n".join(lines)


def register(cli: typer.Typer) -> None:
    """Add `train` and `sweep` to the command."""
    cli.command("train")(train_cmd)
    cli.command("sweep", help=_sweep_help())(sweep_cmd)
