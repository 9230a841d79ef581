"""`scalinglab allocate`: the three allocation approaches from a file or a stored project,
through typer's runner and one real process (exit codes, stderr)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from store.errors import BadInputError
from tests.published import CHINCHILLA

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
FAST = ["--bootstrap", "100", "--fit-bootstrap", "40"]  # the defaults are 500 and 200


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def chinchilla_json() -> dict:
    args = ["allocate", "--csv", str(CHINCHILLA), "--drop-highest", "5", *FAST, "--json"]
    result = runner.invoke(cli, [*args, "--budget", "1e21", "--budget", "5.76e23"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)


def test_json_has_every_approach_with_intervals(chinchilla_json: dict) -> None:
    report = chinchilla_json
    assert report["budgets"] == [1e21, 5.76e23]
    assert report["accounting"] == {"flops": "6ND", "params": "total"}
    assert report["accounting_text"] == "C = 6 N D; N counts all parameters"
    assert report["selection"] == {"file": str(CHINCHILLA)}
    names = [a["approach"] for a in report["approaches"]]
    assert names == ["envelope", "isoflop", "parametric"]
    for ans in report["approaches"]:
        lo, hi = ans["a_interval"]
        assert lo < ans["a"] < hi and 0.4 < ans["a"] < 0.6
        assert [row["flops"] for row in ans["at_budgets"]] == [1e21, 5.76e23]
        for row in ans["at_budgets"]:
            for key in ("N_opt", "D_opt", "tokens_per_param"):
                low, high = row[f"{key}_interval"]
                assert low < row[key] < high
        assert isinstance(ans["flags"], list)
    assert [a["hoffmann2022"]["a"] for a in report["approaches"]] == [0.50, 0.49, 0.46]
    assert report["approaches"][2]["law"] in ("chinchilla",)  # the first law with an optimum


def test_text_report(tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["allocate", "--csv", str(CHINCHILLA), "--drop-highest", "5", *FAST]
    )
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith("accounting: C = 6 N D; N counts all parameters   intervals: 95%")
    for head in ("Approach 1: envelope", "Approach 2: IsoFLOP", "Approach 3: parametric"):
        assert head in text
    assert text.count("C = 1e+21: N_opt") == 3 and text.count("C = 5.76e+23: N_opt") == 3
    assert "flag: budget C=" in text  # IsoFLOP budgets that miss their minimum


def test_stored_project(tmp_path: Path) -> None:
    store = ["--store", str(tmp_path / "store")]
    imported = runner.invoke(cli, ["import", str(CHINCHILLA), "--project", "chin", *store])
    assert imported.exit_code == 0, imported.output
    args = ["allocate", "--project", "chin", "--budget", "1e21", *FAST, "--json", *store]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(result.output)
    assert report["selection"] == {"project": "chin"}
    iso = report["approaches"][1]
    assert iso["n_points"] == 245 and 0.4 < iso["a"] < 0.6


def test_help_explains_the_approaches() -> None:
    text = runner.invoke(cli, ["allocate", "--help"]).output
    for words in ("envelope", "IsoFLOP", "parametric", "--budget", "--flops", "--grouping"):
        assert words in text
    assert "a = 0.50, 0.49, 0.46" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give the data: --csv FILE or --project P"),
        (["--grouping", "weekly"], "--grouping must be one of auto, exact, bins, checkpoints"),
        (["--law", "nmt"], "--law must be one of"),
        (["--flops", "8ND"], "FLOP accounting must be one of 6ND, attention, logged"),
        (["--params", "non_embedding"], "params_non_embedding is missing or not positive on 245"),
        (["--level", "2"], "--level must be between 0 and 1"),
    ],
)
def test_bad_input_is_refused(args: list[str], message: str) -> None:
    data = [] if not args else ["--csv", str(CHINCHILLA)]
    result = runner.invoke(cli, ["allocate", *data, *args])
    assert isinstance(result.exception, BadInputError), result.output
    assert message in str(result.exception)


def test_real_process_exit_codes(tmp_path: Path) -> None:
    bad = _run(["allocate", "--csv", str(tmp_path / "missing.csv")])
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
    assert "Traceback" not in bad.stderr
    ok = _run(["allocate", "--csv", str(CHINCHILLA), "--budget", "1e22", *FAST, "--json"])
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["budgets"] == [1e22]
