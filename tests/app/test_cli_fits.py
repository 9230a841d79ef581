"""`fit --json` piped to `predict` in real processes, the knobs on the command line, both
bands and the flags in `predict`'s text, and `scalinglab fits` over a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "app.cli"]


def strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def power_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = np.geomspace(1e6, 1e9, 12)
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("csv") / "power.csv"
    loss = (1.7 + (3e4 / x) ** 0.3) * rng.lognormal(0, 0.005, 12)
    pd.DataFrame({"params": x, "loss": loss}).to_csv(path, index=False)
    return path


def run(args: list[str], store: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCALINGLAB_STORE": str(store), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, env=env, cwd=ROOT
    )


def test_fit_json_is_accepted_by_predict_through_a_pipe(power_csv: Path, tmp_path: Path) -> None:
    fitted = run(["fit", "power_law", "--csv", str(power_csv), "--json"], tmp_path / "s")
    assert fitted.returncode == 0, fitted.stderr
    raw = strict(fitted.stdout)
    assert raw["method"] == "bootstrap, 400 resamples of runs"
    assert raw["uncertainty"]["method"] == "bootstrap" and raw["flags"] == []
    # the shell's pipe: fit --json | predict -
    piped = subprocess.run(
        f"{' '.join(CLI)} fit power_law --csv {power_csv} --json | "
        f"{' '.join(CLI)} predict - --at params=1e9,1e11",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SCALINGLAB_STORE": str(tmp_path / "s")},
    )
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert lines[0] == "95% intervals: bootstrap, 400 resamples of runs"
    assert lines[1].startswith("params=1e+09: loss ") and "confidence [" in lines[1]
    assert "prediction [" in lines[1]
    assert lines[-1] == "warning: beyond the data: params 100x the largest fitted"
    # a JSON file of the same output works too, and the answer is strict JSON
    path = tmp_path / "fit.json"
    path.write_text(fitted.stdout)
    out = run(["predict", str(path), "--at", "params=1e10", "--json"], tmp_path / "s")
    answer = strict(out.stdout)
    assert answer["lo"][0] < answer["loss"][0] < answer["hi"][0]
    assert answer["pred_lo"][0] < answer["lo"][0] and answer["hi"][0] < answer["pred_hi"][0]
    assert answer["flags"] == {"beyond_data": {}}  # 10x the largest: at the factor, not past


def test_predict_refuses_what_is_not_a_fit(tmp_path: Path) -> None:
    out = run(["predict", "-", "--at", "params=1e9"], tmp_path / "s", stdin="[1, 2]")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: not a fit result: the JSON is not an object"


def test_knobs_on_the_command_line_are_recorded(power_csv: Path, tmp_path: Path) -> None:
    args = ["fit", "power_law", "--csv", str(power_csv), "--json", "--intervals", "sandwich"]
    args += ["--delta", "0.01", "--residuals", "linear", "--level", "0.9"]
    out = run(args, tmp_path / "s")
    assert out.returncode == 0, out.stderr
    raw = strict(out.stdout)
    assert raw["options"]["delta"] == 0.01 and raw["options"]["residuals"] == "linear"
    assert raw["level"] == 0.9 and raw["uncertainty"]["method"] == "sandwich"
    bad = run(["fit", "power_law", "--csv", str(power_csv), "--intervals", "x"], tmp_path / "s")
    assert bad.returncode == 2
    assert "intervals must be one of auto, bootstrap, sandwich, profile, curvature" in bad.stderr


def test_fits_lists_saved_fits_with_their_flags(power_csv: Path, tmp_path: Path) -> None:
    store = tmp_path / "s"
    empty = run(["fits"], store)
    assert empty.returncode == 0 and empty.stdout.strip() == "no saved fits"
    assert run(["fit", "power_law", "--csv", str(power_csv), "--save"], store).returncode == 0
    rising = tmp_path / "rising.csv"
    x = np.geomspace(1e6, 1e9, 8)
    pd.DataFrame({"params": x, "loss": 1.5 + (x / 1e6) ** 0.1}).to_csv(rising, index=False)
    assert run(["fit", "power_law", "--csv", str(rising), "--save"], store).returncode == 0
    listed = strict(run(["fits", "--json"], store).stdout)
    assert [row["id"] for row in listed] == [2, 1]
    assert listed[1]["flags"] == [] and listed[1]["selection"] == str(power_csv)
    assert listed[0]["flags"][:2] == ["not converged", "at_bound"]
    assert {"law", "project", "created_at", "method"} <= set(listed[0])
    text = run(["fits", "--law", "power_law"], store).stdout.splitlines()
    assert text[0].split() == ["id", "law", "project", "selection", "created", "method", "flags"]
    assert text[2].split()[0] == "2" and "not converged, at_bound" in text[2]
    none = run(["fits", "--project", "elsewhere"], store)
    assert none.stdout.strip() == "no saved fits in project 'elsewhere'"
