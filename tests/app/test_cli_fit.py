"""`scalinglab laws`, `fit` and `predict`, through typer's runner and one real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import fitting
from app.cli import app
from store.errors import BadInputError

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-row-per-model table with known Chinchilla parameters."""
    _, frame = fitting.LAWS["chinchilla"].example(np.random.default_rng(0))
    path = tmp_path_factory.mktemp("csv") / "models.csv"
    frame.assign(model=[f"m{i}" for i in range(len(frame))]).to_csv(path, index=False)
    return path


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)


def test_laws_lists_every_law() -> None:
    listed = _json(["laws", "--json"])
    assert [d["name"] for d in listed] == list(fitting.LAWS)
    chin = next(d for d in listed if d["name"] == "chinchilla")
    assert chin["parameters"] == ["E", "A", "B", "alpha", "beta"]
    text = runner.invoke(app, ["laws"]).output
    assert "L = E + A / N^alpha + B / D^beta" in text


def test_fit_csv_json(table: Path) -> None:
    out = _json(["fit", "chinchilla", "--csv", str(table), "--json"])
    for key in ("law", "params", "stderr", "objective", "n_points"):
        assert key in out
    assert out["law"] == "chinchilla" and out["n_points"] == 64
    assert out["params"]["alpha"] == pytest.approx(0.35, abs=0.03)
    assert "fit_id" not in out


def test_fit_save_then_predict(table: Path, tmp_path: Path) -> None:
    store = ["--store", str(tmp_path / "store")]
    out = _json(["fit", "chinchilla", "--csv", str(table), "--save", "--json", *store])
    fit_id = out["fit_id"]
    pred = _json(
        ["predict", str(fit_id), "--at", "params=1e9,7e10", "--at", "tokens=2e10", "--json", *store]
    )
    p = out["params"]
    expect = [p["E"] + p["A"] / n ** p["alpha"] + p["B"] / 2e10 ** p["beta"] for n in (1e9, 7e10)]
    np.testing.assert_allclose(pred["loss"], expect, rtol=1e-12)
    assert all(
        lo <= v <= hi for lo, v, hi in zip(pred["lo"], pred["loss"], pred["hi"], strict=True)
    )
    optimal = _json(["predict", str(fit_id), "--at", "flops=1e21", "--json", *store])
    co = optimal["compute_optimal"]
    assert 6 * co["N_opt"][0] * co["D_opt"][0] == pytest.approx(1e21)
    text = runner.invoke(
        app, ["predict", str(fit_id), "--at", "params=1e9", "--at", "tokens=2e10", *store]
    ).output
    assert "loss" in text


def test_predict_from_a_json_file(table: Path, tmp_path: Path) -> None:
    result = fitting.fit(
        "power_law", fitting.LAWS["power_law"].example(np.random.default_rng(0))[1]
    )
    path = tmp_path / "fit.json"
    path.write_text(result.to_json())
    out = _json(["predict", str(path), "--at", "params=1e11", "--json"])
    assert out["loss"][0] == pytest.approx(float(result.predict({"params": [1e11]})[0]))


def test_fit_from_a_stored_project(tmp_path: Path) -> None:
    from store.core import Store
    from store.inbox import InboxWriter

    store = Store(tmp_path / "store")
    for i, n in enumerate([1e6, 3e6, 1e7, 3e7, 1e8]):
        with InboxWriter(store, "p", f"run{i}", facts={"params": int(n)}) as w:
            w.log(100, loss=1.7 + (3e4 / n) ** 0.3, tokens=1e9)
    out = _json(
        [
            "fit",
            "power_law",
            "--project",
            "p",
            "--runs",
            "run0,run1,run2,run3,run4",
            "--x",
            "params",
            "--fix",
            "L_inf=1.7",
            "--json",
            "--store",
            str(store.root),
        ]
    )
    assert out["n_points"] == 5 and out["params"]["L_inf"] == 1.7
    assert out["params"]["alpha"] == pytest.approx(0.3, rel=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "no_such_law", "--csv", "x.csv"], "unknown law"),
        (["fit", "chinchilla"], "--csv FILE or --project"),
        (["fit", "power_law", "--csv", "{table}", "--fix", "L_inf"], "NAME=VALUE"),
        (["fit", "power_law", "--csv", "{table}", "--fix", "L_inf=abc"], "not a number"),
        (["fit", "chinchilla", "--csv", "{table}", "--x", "params"], "--x only applies"),
        (["predict", "not-a-fit"], "neither a fit id"),
    ],
)
def test_bad_input_is_a_clear_error(args: list[str], message: str, table: Path) -> None:
    result = runner.invoke(app, [a.replace("{table}", str(table)) for a in args])
    assert result.exit_code != 0
    assert isinstance(result.exception, BadInputError), result.exception
    assert message in str(result.exception)


@pytest.mark.slow
def test_real_process_exit_codes(table: Path, tmp_path: Path) -> None:
    env_store = ["--store", str(tmp_path / "s")]
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "fit",
            "power_law",
            "--csv",
            str(table),
            "--x",
            "params",
            "--json",
            *env_store,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["law"] == "power_law"
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "fit",
            "kaplan",
            "--csv",
            str(tmp_path / "missing.csv"),
            *env_store,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def test_predict_a_new_schedule(tmp_path: Path) -> None:
    """A curve-law fit predicts the loss curve of a schedule it never saw."""
    law = fitting.LAWS["lr_annealing"]
    _, frame = law.example(np.random.default_rng(0))
    result = fitting.fit("lr_annealing", frame)
    path = tmp_path / "curve_fit.json"
    path.write_text(result.to_json())
    spec = "cosine:peak=3e-4,warmup=100,total=2000,final=3e-5"
    out = _json(["predict", str(path), "--schedule", spec, "--at", "step=500,1000,2000", "--json"])
    curve = out["curve"]
    assert curve["step"] == [500, 1000, 2000]
    assert all(np.isfinite(curve["loss"]))
    assert curve["loss"][2] < curve["loss"][0]  # the loss falls as the LR anneals
    text = runner.invoke(app, ["predict", str(path), "--schedule", spec])
    assert text.exit_code == 0 and "step" in text.output
