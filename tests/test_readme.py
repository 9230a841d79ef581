"""Every line of the README's Quickstart runs as written on a fresh clone.

The lines are read from README.md itself, so an edit there that breaks a command fails here.
They run in a fresh folder (with `examples/` linked in, as at the repository's root) against a
fresh store, through the scalinglab of the interpreter running the tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README's Quickstart has no bash block"
    lines = [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("source ")]


def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    work = tmp_path / "clone"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    env = {
        **os.environ,
        "SCALINGLAB_STORE": str(tmp_path / "store"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "COLUMNS": "200",
    }
    lines = quickstart_lines()
    assert any(line.startswith("scalinglab fit") for line in lines)
    outputs = {}
    for line in lines:
        done = subprocess.run(
            ["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{line!r} exited {done.returncode}:\n{done.stderr}"
        outputs[line] = done.stdout
    fit_json = next(out for line, out in outputs.items() if "--json" in line)
    assert json.loads(fit_json)["law"] == "chinchilla"
    assert (work / "curves.parquet").stat().st_size > 0
