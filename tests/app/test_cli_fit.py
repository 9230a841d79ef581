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
from app.cli import cli
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
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)


def test_laws_lists_every_law() -> None:
    listed = _json(["laws", "--json"])
    assert [d["name"] for d in listed] == list(fitting.LAWS)
    chin = next(d for d in listed if d["name"] == "chinchilla")
    assert chin["parameters"] == ["E", "A", "B", "alpha", "beta"]
    text = runner.invoke(cli, ["laws"]).output
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
        cli, ["predict", str(fit_id), "--at", "params=1e9", "--at", "tokens=2e10", *store]
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
    result = runner.invoke(cli, [a.replace("{table}", str(table)) for a in args])
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
    text = runner.invoke(cli, ["predict", str(path), "--schedule", spec])
    assert text.exit_code == 0 and "step" in text.output


# --- degenerate fits through the real entry point (exit code, stderr, strict JSON) ---------


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run `scalinglab ARGS` through the console-script entry: (exit code, stdout, stderr)."""
    from app.cli import main

    saved = sys.argv
    sys.argv = ["scalinglab", *args]
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _strict(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


SIZES = [float(n) for n in np.geomspace(1e6, 1e9, 8)]


@pytest.fixture()
def rising_csv(tmp_path: Path) -> Path:
    """Loss rising with N: a power law can only end at its bounds."""
    path = tmp_path / "rising.csv"
    rows = ["run,step,params,tokens,loss"]
    rows += [f"r{i},1000,{n!r},{20 * n!r},{1.5 + (n / 1e6) ** 0.1!r}" for i, n in enumerate(SIZES)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_degenerate_fit_prints_strict_json_with_its_flags(
    rising_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _main(["fit", "power_law", "--csv", str(rising_csv), "--json"], capsys)
    assert code == 0, err
    raw = _strict(out)
    assert raw["converged"] is False
    assert raw["checks"]["at_bound"] == {"x0": "lower", "alpha": "upper"}
    assert raw["checks"]["undetermined"] == ["x0", "alpha"]
    assert raw["stderr"]["x0"] == "inf" and raw["intervals"]["alpha"] == ["-inf", "inf"]


def test_degenerate_fit_text_shows_the_flags_beside_the_numbers(
    rising_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _main(["fit", "power_law", "--csv", str(rising_csv)], capsys)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert lines["x0"].endswith("(at its lower bound, undetermined)")
    assert lines["alpha"].endswith("(at its upper bound, undetermined)")
    assert "warning: the fit did not converge to a determined optimum inside the bounds" in out


def test_predict_json_of_an_undetermined_fit_is_strict(
    rising_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = fitting.data.read_file(rising_csv)
    path = tmp_path / "fit.json"
    path.write_text(fitting.fit("power_law", frame).to_json())
    code, out, err = _main(["predict", str(path), "--at", "params=1e10", "--json"], capsys)
    assert code == 0, err
    raw = _strict(out)
    assert raw["lo"] == ["-inf"] and raw["hi"] == ["inf"]


@pytest.mark.parametrize(
    ("law", "params", "tokens", "loss", "message"),
    [
        (
            "power_law",
            "1e8",
            "{d}",
            "{loss}",
            "error: law 'power_law': every point has params=1e+08, so the law predicts the "
            "same loss for all 8 of them and cannot be fitted; the data need points at two "
            "or more values of params\n",
        ),
        (
            "chinchilla",
            "1e8",
            "2e9",
            "{loss}",
            "error: law 'chinchilla': every point has params=1e+08 and tokens=2e+09, so the "
            "law predicts the same loss for all 8 of them and cannot be fitted; the data need "
            "points at two or more values of params or tokens\n",
        ),
        (
            "chinchilla",
            "{n}",
            "{d}",
            "1e300",
            "error: column 'loss': law 'chinchilla': 8 loss value(s) are beyond 1e+06 (the "
            "first, 1e+300, at fit point 0); no loss in nats or bits comes near that: a "
            "diverged run, or not a loss?\n",
        ),
    ],
    ids=["one-N", "one-N-and-D", "loss-1e300"],
)
def test_unfittable_data_exits_2_with_what_is_wrong(
    law: str,
    params: str,
    tokens: str,
    loss: str,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = ["run,step,params,tokens,loss"]
    for i, n in enumerate(SIZES):
        values = {"n": repr(n), "d": repr(20 * n), "loss": repr(2.0 + 0.1 * i)}
        cells = [c.format(**values) for c in (params, tokens, loss)]
        rows.append(f"r{i},1000,{','.join(cells)}")
    path = tmp_path / "data.csv"
    path.write_text("\n".join(rows) + "\n")
    code, out, err = _main(["fit", law, "--csv", str(path), "--json"], capsys)
    assert (code, out, err) == (2, "", message)


def test_a_diverged_run_is_left_out_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from store.core import Store
    from store.inbox import InboxWriter

    store = Store(tmp_path / "store")
    for i, n in enumerate(SIZES):
        final = float("nan") if i == 3 else 1.7 + (3e4 / n) ** 0.3
        with InboxWriter(store, "p", f"r{i}", facts={"params": int(n)}) as w:
            w.log(0, loss=10.0)
            w.log(1000, loss=final)
    args = ["fit", "power_law", "--project", "p", "--json", "--store", str(store.root)]
    code, out, err = _main(args, capsys)
    why = "its last logged loss (step 1000) is NaN or infinite: a diverged run, with no final loss"
    assert code == 0
    assert err == f"warning: run 'r3' left out: {why}\n"
    raw = _strict(out)
    assert raw["n_points"] == 7 and raw["checks"]["excluded_runs"] == {"r3": why}
    assert raw["params"]["alpha"] == pytest.approx(0.3, rel=1e-4)


# --- help ------------------------------------------------------------------------------------


def _commands(group: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, command in getattr(group, "commands", {}).items():
        out.append((*path, name))
        out += _commands(command, (*path, name))
    return out


def _help(args: list[str], raw: bool = False) -> str:
    """The help of a verb; by default its words only (boxes and line breaks removed)."""
    import re

    result = runner.invoke(cli, [*args, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.output if raw else re.sub(r"[│╭╮╰╯─\s]+", " ", result.output)


def test_every_verb_has_plain_help() -> None:
    """No `<bool>` beside a flag and no `{law}` in a usage line, on any verb."""
    import typer.main

    verbs = _commands(typer.main.get_command(cli))
    assert ("fit",) in verbs and ("jobs", "run") in verbs
    for verb in [(), *verbs]:
        text = _help(list(verb), raw=True)
        assert "<bool>" not in text, verb
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert "{" not in usage, (verb, usage)
    assert "Usage: scalinglab fit [OPTIONS] LAW " in _help(["fit"])


def test_fit_help_names_what_fix_takes_for_every_law() -> None:
    text = _help(["fit"])
    for name, law in fitting.LAWS.items():
        assert f"{name}:" in text
        for param in law.describe()["parameters"]:
            assert param in text, (name, param)
    assert "multilingual: <family>.E, <family>.A" in text


def test_predict_help_names_the_at_columns_and_the_schedule_syntax() -> None:
    from fitting.schedules import KINDS

    text = _help(["predict"])
    assert "COLUMN=VALUE[,VALUE...]" in text and "KIND:KEY=VALUE" in text
    for kind in KINDS:
        assert kind in text
    assert "nmt: encoder_params, decoder_params" in text
    assert "or flops alone" in text and "cosine:peak=3e-4,total=2000" in text
