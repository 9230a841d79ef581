"""`scalinglab fit` / `import` / `runs set` / `jobs add`: choosing what a fit fits.

Published data (tests/published.py; sources and cuts in tests/data/README.md): Gadre et
al. 2024, Besiroglu et al. 2024's Chinchilla points, Gordon et al. 2021's NMT table, Li
et al. 2025's checkpoints and Luo et al. 2025's 25M curves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli, main
from store.errors import ScalinglabError
from tests.published import CHINCHILLA, GADRE_C4, GADRE_THREE, GORDON_NMT, LI_17M, LUO_25M

runner = CliRunner()


def _run(args: list[str], code: int = 0) -> str:
    """Run the CLI in-process; a user error is exit 2 with its message, as `main()` maps
    it (the real entry point is checked in the first test)."""
    result = runner.invoke(cli, args)
    exit_code, output = result.exit_code, result.output
    if isinstance(result.exception, ScalinglabError):
        exit_code, output = 2, f"{output}error: {result.exception}\n"
    assert exit_code == code, (output, result.exception)
    return output


def test_several_splits_and_no_split_is_an_error_listing_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["scalinglab", "fit", "chinchilla", "--csv", str(GADRE_C4)])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    captured = capsys.readouterr()
    out = captured.err
    assert captured.out == ""
    assert out.startswith("error: the data hold 8 splits and law 'chinchilla' fits one")
    for short in ("openlm", "c4_val", "paloma_c4_en", "de-en"):
        assert f"\n  {short}  (" in out


def test_split_and_group_by_name_the_split_and_each_corpus() -> None:
    out = _run(
        [
            "fit",
            "chinchilla",
            "--csv",
            str(GADRE_THREE),
            "--split",
            "c4_val",
            "--group-by",
            "train_dataset",
        ]
    )
    assert "data: 104 of 312 rows used (104 runs), split 'training/eval_data/c4_val/" in out
    assert "  dropped 208: not split 'training/eval_data/c4_val/" in out
    assert "  groups: c4_original (34), rpj (35), rw_original (35)" in out
    assert "one fit per train_dataset (shared: none)" in out
    lines = out.splitlines()
    after = lines[lines.index("one fit per train_dataset (shared: none)") + 2 :]
    table = {line.split()[0]: line.split() for line in after}
    assert set(table) == {"c4_original", "rpj", "rw_original"}
    assert float(table["c4_original"][-1]) == pytest.approx(6.86, abs=0.05)  # D/N at 1e21


def test_where_and_exclude_give_the_240_point_fit(tmp_path: Path) -> None:
    store = ["--store", str(tmp_path / "store")]
    out = _run(["fit", "chinchilla", "--csv", str(CHINCHILLA), "--where", "loss < 3.44"])
    assert "(--where loss < 3.44)" in out
    assert (
        "data: 240 of 245 rows used (240 runs)\n  dropped 5: --where 'loss < 3.44' is false" in out
    )
    saved = json.loads(
        _run(
            [
                "fit",
                "chinchilla",
                "--csv",
                str(CHINCHILLA),
                "--exclude",
                "N=6.796e+09,C=9.994e+18,N=2.98e+09,C=9.228e+18",
                "--where",
                "loss < 3.44",
                "--save",
                "--json",
                *store,
            ]
        )
    )
    assert saved["n_points"] == 240
    assert saved["params"]["B"] == pytest.approx(2143, rel=0.01)
    assert saved["selection"]["exclude"] == ["N=6.796e+09,C=9.994e+18,N=2.98e+09,C=9.228e+18"]
    assert saved["selection"]["report"]["dropped"] == {
        "--exclude": 2,
        "--where 'loss < 3.44' is false": 3,
    }
    from fitting.persist import load_result
    from store.core import Store
    from store.fits import load_fit

    back = load_result(Store(tmp_path / "store"), saved["fit_id"])
    assert back.selection == saved["selection"]
    assert (
        json.loads(load_fit(Store(tmp_path / "store"), saved["fit_id"])["selection"])
        == saved["selection"]
    )


def test_bad_selections_exit_2_with_the_reason() -> None:
    csv = ["fit", "chinchilla", "--csv", str(CHINCHILLA)]
    assert "--where: unexpected character ';'" in _run([*csv, "--where", "loss; 3"], code=2)
    assert "--exclude: no run 'nope'" in _run([*csv, "--exclude", "nope"], code=2)
    assert "reduce must be one of final, all, best" in _run([*csv, "--reduce", "mean"], code=2)
    assert "--share makes parameters common" in _run([*csv, "--share", "alpha"], code=2)
    assert "--map and --bits read a --csv file" in _run(
        ["fit", "chinchilla", "--project", "p", "--bits", "--store", "/nonexistent"], code=2
    )


def test_tie_on_five_points() -> None:
    """Gadre et al.'s form: one exponent for N and D (alpha = beta), on 5 models."""
    out = _run(
        [
            "fit",
            "chinchilla",
            "--csv",
            str(GADRE_C4),
            "--split",
            "c4_val",
            "--where",
            "chinchilla_multiplier == 4",
            "--tie",
            "alpha=beta",
            "--json",
        ]
    )
    result = json.loads(out)
    assert result["n_points"] == 5
    assert result["params"]["alpha"] == result["params"]["beta"]
    assert result["options"]["tie"] == {"beta": "alpha"}


def test_the_nmt_tsv_by_language_with_map() -> None:
    out = _run(
        [
            "fit",
            "power_law",
            "--x",
            "tokens",
            "--csv",
            str(GORDON_NMT),
            "--map",
            "ent_dev=loss",
            "--map",
            "data_bytes=tokens",
            "--group-by",
            "Lang",
            "--where",
            "tokens > 5 * 2**20 and ModelSize == 512",
        ]
    )
    assert "one fit per Lang (shared: none)" in out
    lines = out.splitlines()
    rows = [line.split()[0] for line in lines[lines.index("one fit per Lang (shared: none)") + 2 :]]
    assert rows == ["deen", "ruen", "zhen"]
    # Without --map the file is read (a tab-separated header after '#' lines) and the error
    # names the header's own line, 11.
    bad = _run(["fit", "power_law", "--csv", str(GORDON_NMT)], code=2)
    assert "gordon2021_nmt.tsv, line 11: cannot tell the format" in bad


def test_bits_converts_the_loss(tmp_path: Path) -> None:
    path = tmp_path / "bits.csv"
    path.write_text(
        "model,params,loss\n" + "".join(f"m{i},{10 ** (6 + i)},{4 - 0.3 * i}\n" for i in range(6))
    )
    nats = json.loads(_run(["fit", "power_law", "--csv", str(path), "--json"]))
    bits = json.loads(_run(["fit", "power_law", "--csv", str(path), "--bits", "--json"]))
    assert bits["params"]["L_inf"] == pytest.approx(
        nats["params"]["L_inf"] * 0.6931471805599453, rel=1e-3
    )
    assert bits["selection"]["bits"] is True


def test_import_replicates_keep_every_row(tmp_path: Path) -> None:
    store = ["--store", str(tmp_path / "store")]
    sweep = ["--map", "model=run", "--map", "peak_lr=run", "--map", "sweep=run"]
    sweep += ["--map", "total_steps=run", "--map", "total_epochs=run"]
    refused = _run(["import", str(LI_17M), "-p", "li", *sweep, *store], code=2)
    assert "duplicate (run, split, step)" in refused
    out = _run(["import", str(LI_17M), "-p", "li", *sweep, "--replicates", "keep", *store])
    assert "+168 points" in out
    assert "15 repeated row(s) of 7 run(s) kept as replicates" in out
    from fitting.data import load_project
    from store.core import Store

    frame = load_project(Store(tmp_path / "store"), "li")
    assert len(frame) == 168
    reps = frame[frame["run"].str.contains(" rep")]
    assert len(reps) == 15 and set(reps["replicate"]) == {2, 3}
    numbered = reps["replicate_of"] + " rep" + reps["replicate"].astype(int).astype(str)
    assert (numbered == reps["run"]).all()
    fit = json.loads(
        _run(["fit", "chinchilla", "--project", "li", "--checkpoints", "--json", *store])
    )
    assert fit["selection"]["report"]["rows_in"] == 168
    assert fit["selection"]["checkpoints"] is True


def test_runs_set_and_a_facts_table(tmp_path: Path) -> None:
    store = ["--store", str(tmp_path / "store")]
    curve = LUO_25M / "constant_24000.csv"
    _run(["import", str(curve), "-p", "luo", *store])
    refused = _run(["fit", "power_law", "--x", "params", "--project", "luo", *store], code=2)
    assert "column 'params' must be a positive number" in refused
    out = _run(["runs", "set", "constant_24000", "params=2.5e7", "width=512", "-p", "luo", *store])
    assert out.strip() == "project 'luo': 2 fact(s) set on 1 run(s)"
    listed = json.loads(_run(["runs", "--project", "luo", "--json", *store]))
    assert listed[0]["params"] == 25_000_000
    facts = tmp_path / "facts.csv"
    facts.write_text("# facts of Luo et al.'s runs\nrun,family,tokens\nconstant_24000,en,1.2e10\n")
    assert "2 fact(s) set on 1 run(s)" in _run(
        ["runs", "set", "--csv", str(facts), "-p", "luo", *store]
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("run,tokens\nconstant_24000,-3\n")
    assert "bad.csv, line 2: run fact 'tokens' must be a positive number" in _run(
        ["runs", "set", "--csv", str(bad), "-p", "luo", *store], code=2
    )
    assert "project 'luo' has no run 'nope'" in _run(
        ["runs", "set", "nope", "params=1", "-p", "luo", *store], code=2
    )
    from fitting.data import load_project
    from store.core import Store

    frame = load_project(Store(tmp_path / "store"), "luo")
    assert set(frame["width"]) == {512} and set(frame["family"]) == {"en"}
    last = frame["step"] == frame["step"].max()
    assert set(frame.loc[last, "tokens"]) == {1.2e10} and frame.loc[~last, "tokens"].isna().all()


def test_the_exact_schedule_replaces_the_interpolation_note(tmp_path: Path) -> None:
    store = ["--store", str(tmp_path / "store")]
    names = ("cosine_24000", "constant_24000", "wsdcon_9")
    _run(["import", *(str(LUO_25M / f"{n}.csv") for n in names), "-p", "luo", *store])
    fit = ["fit", "lr_annealing", "--project", "luo", *store]
    plain = _run(fit)
    assert "note: run 'cosine_24000': LR known at" in plain
    assert "interpolated linearly (pass its schedule for the exact LR)" in plain
    from fitting.schedules import ScheduleSpec

    specs = [f"{n}={ScheduleSpec.luo2025(n)}" for n in names]
    exact = _run([*fit, *(a for s in specs for a in ("--schedule", s))])
    assert "interpolated" not in exact
    assert "--schedule: no run 'nope'" in _run(
        [*fit, "--schedule", "nope=constant:peak=1e-3,total=10"], code=2
    )
    # Stored with the runs at import instead: the same fit, no note either.
    other = ["--store", str(tmp_path / "store2")]
    for name in names:
        _run(
            [
                "import",
                str(LUO_25M / f"{name}.csv"),
                "-p",
                "luo",
                "--schedule",
                str(ScheduleSpec.luo2025(name)),
                *other,
            ]
        )
    stored = _run(["fit", "lr_annealing", "--project", "luo", *other])
    assert "interpolated" not in stored
    pick = [line for line in exact.splitlines() if line.startswith(("L0", "A ", "alpha"))]
    assert pick == [line for line in stored.splitlines() if line.startswith(("L0", "A ", "alpha"))]


def test_jobs_add_takes_the_same_vocabulary(tmp_path: Path) -> None:
    store = ["--store", str(tmp_path / "store")]
    _run(["import", str(CHINCHILLA), "-p", "ch", *store])
    _run(
        [
            "jobs",
            "add",
            "--name",
            "j",
            "--project",
            "ch",
            "--law",
            "chinchilla",
            "--where",
            "loss < 3.44",
            "--tie",
            "alpha=beta",
            *store,
        ]
    )
    assert _run(["jobs", "run", "1", *store]).strip() == "job 1: fit 1 saved"
    from fitting.persist import load_result
    from store.core import Store

    result = load_result(Store(tmp_path / "store"), 1)
    assert result.n_points == 240 and result.params["alpha"] == result.params["beta"]
    assert result.selection["where"] == ["loss < 3.44"]
    assert result.selection["report"]["dropped"] == {"--where 'loss < 3.44' is false": 5}
    bad = _run(
        [
            "jobs",
            "add",
            "--name",
            "k",
            "--project",
            "ch",
            "--law",
            "chinchilla",
            "--where",
            "loss <",
            *store,
        ],
        code=2,
    )
    assert "--where: expected a value" in bad
