"""The unique-token count (schema v5's `runs.unique_tokens`, Muennighoff et al.'s U_D) from
every way in (file import, live writers, `runs set`, an older store's extra fact) to a
fit of the data_constrained law on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fitting
from store import Store, queries
from store.errors import BadInputError
from store.importers import import_files, parse_file
from store.inbox import InboxWriter
from store.ingest import ingest_inbox
from store.runfacts import facts_frame, set_facts

TRUTH = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353, "R_D": 15.4}


def _runs(store: Store, project: str = "p") -> dict[str, object]:
    frame = queries.list_runs(store, project)
    return {r["run"]: r["unique_tokens"] for r in frame.to_dict("records")}


def test_a_table_column_and_its_aliases_become_the_run_fact(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "t.csv"
    path.write_text("run,params,tokens,U_D,loss\na,1000000,20000000,10000000,3.5\n")
    parsed = parse_file(path)
    assert parsed.mapping["U_D"] == "unique_tokens"
    assert parsed.runs["unique_tokens"].tolist() == [10_000_000]
    assert not any("ignored" in w for w in parsed.warnings)
    import_files(store, [path], project="p")
    assert _runs(store) == {"a": 10_000_000}


def test_a_long_file_carries_it_once_per_run(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "long.csv"
    path.write_text("run,step,loss,unique_tokens\na,1,4.0,5000\na,2,3.5,5000\nb,1,4.1,7000\n")
    import_files(store, [path], project="p")
    assert _runs(store) == {"a": 5000, "b": 7000}
    bad = tmp_path / "varies.csv"
    bad.write_text("run,step,loss,unique_tokens\na,1,4.0,5000\na,2,3.5,6000\n")
    with pytest.raises(BadInputError, match="one unique_tokens per run") as err:
        parse_file(bad)
    assert err.value.line == 3 and err.value.column == "unique_tokens"


@pytest.mark.parametrize(("cell", "line"), [("-5", 3), ("2.5", 3), ("0", 3)])
def test_bad_counts_name_their_cell(tmp_path: Path, cell: str, line: int) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"run,params,loss,unique_tokens\na,100,3.0,4000\nb,200,2.9,{cell}\n")
    with pytest.raises(BadInputError, match="positive whole number of unique tokens") as err:
        parse_file(path)
    assert (err.value.line, err.value.column) == (line, "unique_tokens")


def test_live_writers_and_init_set_it(store: Store) -> None:
    import scalinglab

    with InboxWriter(store, "p", "w", facts={"params": 10, "unique_tokens": 4e9}) as writer:
        writer.log(1, loss=3.0)
    run = scalinglab.init("p", "i", params=20, unique_tokens=123_456, store=store)
    run.log({"loss": 2.5}, step=1)
    run.finish()
    assert _runs(store) == {"i": 123_456, "w": 4_000_000_000}  # read from the inbox
    assert facts_frame(store, "p").set_index("run")["unique_tokens"].to_dict() == {
        "i": 123_456,
        "w": 4_000_000_000,
    }
    ingest_inbox(store)
    assert _runs(store) == {"i": 123_456, "w": 4_000_000_000}
    with pytest.raises(BadInputError, match="counts distinct training tokens"):
        InboxWriter(store, "p", "neg", facts={"unique_tokens": -1})
    with pytest.raises(BadInputError, match="whole number"):
        InboxWriter(store, "p", "half", facts={"unique_tokens": 1.5})


def _v4_store(tmp_path: Path) -> Store:
    """A database written by the schema-v4 code: a run whose unique-token count was kept
    as an extra fact in `run_facts` (v4 had no column for it)."""
    import duckdb

    from store import schema

    path = tmp_path / "old" / "scalinglab.duckdb"
    path.parent.mkdir()
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP "
        "DEFAULT current_timestamp)"
    )
    for statement in schema.MIGRATIONS[0]:
        con.execute(statement)
    con.execute(
        "INSERT INTO runs (project, run, params, status) VALUES ('p', 'old', 1e8, 'imported')"
    )
    con.execute(
        "INSERT INTO points (project, run, split, step, tokens, loss) "
        "VALUES ('p', 'old', 'train', 10, 4e9, 3.1)"
    )
    for migration in schema.MIGRATIONS[1:4]:
        for statement in migration:
            con.execute(statement)
    con.execute(
        "INSERT INTO run_facts (project, run, name, value) VALUES ('p', 'old', 'unique_tokens', ?)",
        [json.dumps(1_000_000_000)],
    )
    con.execute("INSERT INTO schema_version (version) SELECT unnest(range(1, 5))")
    con.close()
    return Store(path.parent)


def test_an_older_stores_extra_fact_reads_the_same(tmp_path: Path) -> None:
    from fitting.data import load_project
    from fitting.jobs import select_data

    store = _v4_store(tmp_path)
    assert store.schema_version() == 5  # migrated on open
    assert _runs(store) == {"old": None}  # the column is empty: the value is in run_facts
    assert load_project(store, "p")["unique_tokens"].tolist() == [1_000_000_000]
    assert select_data(store, "p", None)["unique_tokens"].tolist() == [1_000_000_000]
    set_facts(store, "p", {"old": {"unique_tokens": "2000000000"}})  # now the column's
    assert _runs(store) == {"old": 2_000_000_000}
    assert facts_frame(store, "p")["unique_tokens"].tolist() == [2_000_000_000]
    with store.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM run_facts").fetchone() == (0,)


def _repeated_data_runs() -> pd.DataFrame:
    """Final points of runs that repeat their data, on Muennighoff et al.'s fitted law."""
    law = fitting.LAWS["data_constrained"]
    rows = [
        (n, epochs * unique, unique)
        for unique in (1e8, 1e9, 1e10)
        for n in np.geomspace(1e7, 3e9, 5)
        for epochs in (0.5, 2.0, 8.0, 30.0)
    ]
    frame = pd.DataFrame(rows, columns=["params", "tokens", "unique_tokens"])
    theta = np.array([[*TRUTH.values(), 5.3]])
    frame["loss"] = law.predict(theta, law.prepare(frame, for_fit=False))[0]
    frame["run"] = [f"r{i:02d}" for i in range(len(frame))]
    return frame


def _assert_truth(params: dict[str, float]) -> None:
    for name, true in TRUTH.items():
        assert params[name] == pytest.approx(true, rel=0.02), name


def test_cli_fits_data_constrained_on_stored_runs(tmp_path: Path) -> None:
    """Runs logged live (unique_tokens a writer's fact), then `scalinglab fit`."""
    from typer.testing import CliRunner

    from app.cli import cli

    store = Store(tmp_path / "store")
    for row in _repeated_data_runs().to_dict("records"):
        facts = {"params": int(row["params"]), "unique_tokens": int(row["unique_tokens"])}
        with InboxWriter(store, "dc", row["run"], facts=facts) as writer:
            writer.log(100, split="eval", loss=row["loss"], tokens=row["tokens"])
    ingest_inbox(store)
    args = ["fit", "data_constrained", "--project", "dc", "--store", str(store.root)]
    out = CliRunner().invoke(cli, [*args, "--bootstrap", "0", "--json"])
    assert out.exit_code == 0, out.output
    _assert_truth(json.loads(out.stdout)["params"])


def test_a_job_fits_data_constrained_on_imported_runs(tmp_path: Path) -> None:
    from fitting.jobs import add_job, run_job
    from fitting.persist import load_result

    path = tmp_path / "dc.csv"
    _repeated_data_runs().to_csv(path, index=False)
    store = Store(tmp_path / "store")
    import_files(store, [path], project="dc")
    job = add_job(
        store,
        name="dc",
        project="dc",
        law="data_constrained",
        selection={"where": "unique_tokens < 5e9"},
        options={"bootstrap": 0},
        schedule="on-new-data",
    )
    result = load_result(store, run_job(store, job))
    assert result.n_points == 40  # the where filter reads the fact: U = 1e10 left out
    _assert_truth(result.params)
