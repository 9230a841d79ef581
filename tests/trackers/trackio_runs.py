"""trackio projects written by the real `trackio` package, in a child process: trackio
fixes its folder (`TRACKIO_DIR`) when imported, so each folder needs a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, sys, trackio
    spec = json.loads(sys.argv[1])
    for project, name, params, shift, steps, extra in spec:
        trackio.init(
            project=project, name=name,
            config={"n_params": params, "lr": 3e-4, "batch_size": 8, "max_tokens": 2e9,
                    "optimizer": "adamw", "warmup_steps": 100, "unique_tokens": 5e8},
        )
        for step in range(steps):
            metrics = {"train/loss": 4.0 - step / 100 + shift, "train/lr": 3e-4,
                       "grad_norm": 1.0}
            if step % 10 == 0:
                metrics["eval/loss"] = 4.5 - step / 100
            trackio.log(metrics, step=step)
        for step, loss in extra:  # a step logged again, a NaN, a negative loss...
            trackio.log({"train/loss": float(loss)}, step=step)
        trackio.finish()
    """
)


def write_projects(root: Path, spec: list[tuple]) -> None:
    """Log `spec` = [(project, run, n_params, shift, steps, [(step, loss)...])] into
    `root` (the trackio folder), offline."""
    env = {**os.environ, "TRACKIO_DIR": str(root), "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(spec)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
