"""W&B offline runs written by the real `wandb` package, in a child process (wandb starts
its own service process; a child keeps it away from the test process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, sys, wandb
    root, spec = sys.argv[1], json.loads(sys.argv[2])
    for name, params, shift, steps, finish in spec:
        # The run file is flushed every 15 s by default: each 0.5 s here.
        settings = wandb.Settings(x_transaction_log_flush_interval=0.5)
        run = wandb.init(
            mode="offline", dir=root, project="sweep", name=name, settings=settings,
            config={"model": {"n_params": params}, "lr": 3e-4, "batch_size": 8,
                    "max_tokens": 2e9, "optimizer": "adamw", "data": {"unique_data": 5e8}},
        )
        for step in range(steps):
            metrics = {"train/loss": max(4.0 - step / 100 + shift, 1.0), "train/lr": 3e-4,
                       "grad_norm": 1.0}
            if step % 10 == 0:
                metrics["eval/loss"] = max(4.5 - step / 100, 1.0)
            run.log(metrics, step=step)
        if finish:
            run.finish()
        else:  # a live run: its file is synced, the process goes on
            print("logged", flush=True)
            sys.stdin.read()
    """
)


def wandb_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        WANDB_SILENT="true",
        WANDB_MODE="offline",
        WANDB_DIR=str(root),
        WANDB_CONFIG_DIR=str(root / ".wandb-config"),
        WANDB_CACHE_DIR=str(root / ".wandb-cache"),
        WANDB_DATA_DIR=str(root / ".wandb-data"),
        WANDB_DISABLE_GIT="true",
        WANDB_DISABLE_CODE="true",
    )
    return env


def write_runs(root: Path, spec: list[tuple[str, int, float, int, bool]]) -> None:
    """Runs `(name, params, loss shift, steps, finished)` under `root/wandb/`."""
    import json

    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root), json.dumps(spec)],
        env=wandb_env(root),
        check=True,
        timeout=300,
    )
