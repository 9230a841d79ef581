"""Imports that exited 0 but changed data, and messages that named the wrong thing (issue
10, items 2 and 4). Each case runs the real CLI verb, checks the exit code and the whole
message, and on a refusal that the store (its tables and `uploads/`) is unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli as command
from store import Store, queries
from store.errors import StoreBusyError
from store.importers import import_files

from .conftest import table_contents

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
GOOD = "run,step,loss\ng,0,3.0\ng,1,2.5\n"
BIGINT = "the store's BIGINT"


@pytest.fixture
def seeded(tmp_path: Path, store: Store) -> Store:
    """A store already holding project 'p', so 'unchanged' has something to keep."""
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    import_files(store, [good], project="p")
    return store


def snapshot(store: Store) -> tuple[dict[str, list[tuple]], list[str]]:
    return table_contents(store), sorted(p.name for p in store.uploads_dir.iterdir())


def cli(store: Store, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(command, [*args, "--store", str(store.root)])
    return result.exit_code, result.stdout, result.stderr


def refused(store: Store, path: Path, message: str, *extra: str) -> None:
    """`import` exits 2 with exactly this message and writes nothing."""
    before = snapshot(store)
    code, out, err = cli(store, "import", str(path), "--project", "p", *extra)
    assert (code, err) == (2, f"error: {message}\n"), out
    assert snapshot(store) == before


def imported(store: Store, path: Path, project: str, *extra: str) -> dict:
    code, out, err = cli(store, "import", str(path), "--project", project, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def steps_of(store: Store, project: str) -> list[tuple[str, str, int]]:
    frame = queries.points_frame(store, project)
    return [(r.run, r.split, int(r.step)) for r in frame.itertuples()]


# --- item 2: over-long lines ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "last"),
    [(3 << 20, False), (40 << 20, False), (2_000_001, False), (3 << 20, True)],
    ids=["3MB", "40MB", "limit+1", "3MB-last-line-without-break"],
)
def test_an_over_long_line_is_refused_with_its_line(
    tmp_path: Path, seeded: Store, length: int, last: bool
) -> None:
    """40 MB lines were dropped without a word (exit 0, the row gone)."""
    row = "b," + "9" * (length - len("b,,2.0")) + ",2.0"
    assert len(row) == length
    body = f"run,step,loss\na,0,3.0\na,1,2.0\n{row}" if last else f"run,step,loss\na,0,3.0\n{row}\n"
    path = tmp_path / "long_line.csv"
    path.write_text(body if last else body + "a,1,2.0\n")
    line = 4 if last else 3
    refused(
        seeded,
        path,
        f"long_line.csv, line {line}: expected lines of at most 2,000,000 bytes, "
        f"got one of {length:,} bytes",
    )


def test_a_line_at_the_limit_is_read_whole(tmp_path: Path, seeded: Store) -> None:
    name = "r" * (2_000_000 - len(",0,3.0"))
    path = tmp_path / "at_limit.csv"
    path.write_bytes(f"run,step,loss\r\n{name},0,3.0\r\nb,1,2.0\r\n".encode())
    assert imported(seeded, path, "q")["points"] == 2
    assert {len(r) for r in queries.list_runs(seeded, "q")["run"]} == {len(name), 1}


# --- item 2: a UTF-8 byte-order mark -------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "\ufeffrun,step,loss\nx,0,3.0\ny,0,2.0\n",
        "\ufeffrun\tstep\tloss\nx\t0\t3.0\ny\t0\t2.0\n",
        "\ufeff# exported by a spreadsheet\nrun,step,loss\nx,0,3.0\ny,0,2.0\n",
    ],
    ids=["csv", "tsv", "comment-first"],
)
def test_a_byte_order_mark_does_not_hide_the_first_column(
    tmp_path: Path, seeded: Store, body: str
) -> None:
    """With a BOM, `run` was ignored and both rows became one run named after the file."""
    path = tmp_path / "bom.csv"
    path.write_text(body, encoding="utf-8")
    report = imported(seeded, path, "q")
    assert report["runs"] == 2
    assert steps_of(seeded, "q") == [("x", "train", 0), ("y", "train", 0)]


def test_a_bad_cell_in_a_file_with_a_bom_is_quoted(tmp_path: Path, seeded: Store) -> None:
    path = tmp_path / "bom_bad.csv"
    path.write_text("\ufeffloss,step,run\n3.0,0,x\noops,1,x\n", encoding="utf-8")
    refused(seeded, path, "bom_bad.csv, line 3, column 'loss': expected a number, got 'oops'")


# --- item 2: steps are integers, stored exactly or refused ---------------------------------


def test_steps_beyond_2_to_the_53_are_stored_exactly(tmp_path: Path, seeded: Store) -> None:
    steps = [2**53 + 1, 2**62 + 3, 2**63 - 1]
    path = tmp_path / "big_steps.csv"
    path.write_text("run,step,loss\n" + "".join(f"a,{s},3.0\n" for s in steps))
    imported(seeded, path, "q")
    assert steps_of(seeded, "q") == [("a", "train", s) for s in steps]
    out = seeded.root.parent / "q.csv"
    assert cli(seeded, "export", "--project", "q", "--out", str(out))[0] == 0
    assert [line.split(",")[3] for line in out.read_text().splitlines()[1:]] == [
        str(s) for s in steps
    ]


def test_integral_spellings_of_a_step_are_accepted(tmp_path: Path, seeded: Store) -> None:
    """pandas writes `100.0` for an integer column with gaps, R writes `1e+05`."""
    path = tmp_path / "spellings.csv"
    path.write_text("run,step,loss\na,100.0,3.0\na,1e+05,2.0\na,+7,2.5\na, 8 ,2.4\na,-0,3.1\n")
    imported(seeded, path, "q")
    assert [s for _, _, s in steps_of(seeded, "q")] == [0, 7, 8, 100, 100_000]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (
            "9223372036854775808",
            f"a non-negative integer below 2^63 = 9,223,372,036,854,775,808 ({BIGINT})",
        ),
        (
            "18446744073709551616",
            f"a non-negative integer below 2^63 = 9,223,372,036,854,775,808 ({BIGINT})",
        ),
        ("1e19", f"a non-negative integer below 2^63 = 9,223,372,036,854,775,808 ({BIGINT})"),
        ("9007199254740993.5", "a non-negative integer"),
        ("1.5", "a non-negative integer"),
        ("-3", "a non-negative integer"),
        ("0x10", "a non-negative integer"),
        ("1_000", "a non-negative integer"),
        ("abc", "a non-negative integer"),
        ("inf", "a non-negative integer"),
        ("", "a non-negative integer step"),
    ],
)
def test_a_step_that_cannot_be_stored_exactly_is_refused(
    tmp_path: Path, seeded: Store, cell: str, expected: str
) -> None:
    """2^63 ended in a traceback; 2^53 + 0.5 was rounded; `0x10` read as 16."""
    path = tmp_path / "bad_step.csv"
    path.write_text(f"run,step,loss\na,0,3.0\n\na,{cell},2.0\n")
    refused(seeded, path, f"bad_step.csv, line 4, column 'step': expected {expected}, got {cell!r}")


@pytest.mark.parametrize(
    ("name", "body", "column", "line"),
    [
        ("wandb.csv", '"Step","r - train/loss"\n0,3.0\n9223372036854775808,2.0\n', "Step", 3),
        ("run-a-tag-loss.csv", "Wall time,Step,Value\n1.0,9223372036854775808,2.0\n", "Step", 2),
        ("table.csv", "model,params,loss,step\nm,1e8,3.0,9223372036854775808\n", "step", 2),
    ],
    ids=["wandb", "tensorboard", "table"],
)
def test_a_too_large_step_is_refused_in_every_format(
    tmp_path: Path, seeded: Store, name: str, body: str, column: str, line: int
) -> None:
    path = tmp_path / name
    path.write_text(body)
    refused(
        seeded,
        path,
        f"{name}, line {line}, column {column!r}: expected a non-negative integer below 2^63 "
        f"= 9,223,372,036,854,775,808 ({BIGINT}), got '9223372036854775808'",
    )


def test_fit_csv_refuses_a_too_large_step(tmp_path: Path) -> None:
    """`fit --csv` ended in a ConversionException traceback (real process: exit code)."""
    path = tmp_path / "models.csv"
    rows = "".join(f"m{i},{10**8 * (i + 1)},{2 * 10**9},{3 - i / 10},0\n" for i in range(5))
    path.write_text(
        "model,params,tokens,loss,step\n" + rows + "m9,1e9,1e9,2.0,9223372036854775808\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "fit", "chinchilla", "--csv", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"error: models.csv, line 7, column 'step': expected a non-negative integer below "
        f"2^63 = 9,223,372,036,854,775,808 ({BIGINT}), got '9223372036854775808'\n"
    )


# --- item 2: W&B run names containing " - " ------------------------------------------------


def test_wandb_run_names_may_contain_the_separator(tmp_path: Path, seeded: Store) -> None:
    """`my run - v2 - train/loss` was cut to run `my run`, metric `v2 - train/loss`."""
    path = tmp_path / "wandb.csv"
    path.write_text(
        '"Step","my run - v2 - train/loss","my run - v2 - train/loss__MIN",'
        '"my run - v2 - train/loss__MAX","b - c - val/loss","b - c - train/lr"\n'
        "0,3.0,2.9,3.1,3.5,0.1\n10,2.0,1.9,2.1,,0.1\n"
    )
    report = imported(seeded, path, "q")
    assert report["runs"] == 2
    assert steps_of(seeded, "q") == [
        ("b - c", "eval", 0),
        ("b - c", "train", 0),
        ("b - c", "train", 10),
        ("my run - v2", "train", 0),
        ("my run - v2", "train", 10),
    ]


# --- item 4: comments before the header; line numbers after multi-line cells --------------


def test_more_than_64_kb_of_comments_before_the_header(tmp_path: Path, seeded: Store) -> None:
    """It read as 'the file is empty'; lines after the comments keep their numbers."""
    comments = "".join(f"# {i:05d} {'x' * 60}\n" for i in range(2000))
    assert len(comments) > 1 << 17
    path = tmp_path / "commented.csv"
    path.write_text(comments + "run,step,loss\na,0,3.0\na,1,2.0\n")
    assert imported(seeded, path, "q")["points"] == 2
    path.write_text(comments + "run,step,loss\na,0,3.0\na,1,oops\n")
    refused(seeded, path, "commented.csv, line 2003, column 'loss': expected a number, got 'oops'")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'step,loss,run\n0,3.0,"a\nb"\n1,oops,"a\nb"\n',
            "line 4, column 'loss': expected a number, got 'oops'",
        ),
        (
            'step,loss,run\n0,3.0,"a\nb"\n1,-1,"a\nb"\n',
            "line 4, column 'loss': expected a non-negative loss (nats or bits), got '-1'",
        ),
        (
            'run,step,loss\n"a\nb",0,3.0\n"a\nb",1,oops\n',
            "line 5, column 'loss': expected a number, got 'oops'",
        ),
        (
            'run,step,loss\n"a\nb\nc",0,3.0\n\n"x\ny",1,2.0,9\n',
            "line 6: expected 3 fields as in the header, got 4",
        ),
        (
            'step,loss,run\r\n0,3.0,"a\r\nb"\r\n1,2.0,"a\r\nb"\r\n1,2.5,"a\r\nb"\r\n',
            "line 6, column 'step': duplicate (run, split, step) with a different value than "
            "line 4; expected each point once (if these rows belong to different runs, e.g. "
            "an LR sweep, map every column that tells them apart to run: --map model=run "
            "--map peak_lr=run)",
        ),
    ],
    ids=["cast", "check", "cell-after-a-multiline-cell", "ragged", "duplicate-crlf"],
)
def test_line_numbers_after_multi_line_quoted_cells(
    tmp_path: Path, seeded: Store, body: str, message: str
) -> None:
    """The line is the physical line the cell starts on, as an editor numbers it."""
    path = tmp_path / "multiline.csv"
    path.write_bytes(body.encode())
    refused(seeded, path, f"multiline.csv, {message}")


# --- item 4: a failed or killed import leaves no copy in uploads/ -------------------------


def test_a_failed_import_leaves_no_copy(tmp_path: Path, seeded: Store) -> None:
    """A reader holds the database: the write fails after the copy was made."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
            "print('ready', flush=True); sys.stdin.read()",
            str(seeded.db_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        before = sorted(p.name for p in seeded.uploads_dir.iterdir())
        path = tmp_path / "new.csv"
        path.write_text("run,step,loss\nn,0,3.0\n")
        with pytest.raises(StoreBusyError):
            import_files(Store(seeded.root, lock_timeout_s=0.5), [path], project="p")
        assert sorted(p.name for p in seeded.uploads_dir.iterdir()) == before
    finally:
        holder.communicate("", timeout=60)
    assert "n" not in set(queries.list_runs(seeded, "p")["run"])


KILLED_IMPORT = textwrap.dedent(
    """
    import os, signal, sys
    from store import Store
    from store.importers import import_files, write

    def killed(*args, **kwargs):  # a kill -9 in the middle of the transaction
        os.kill(os.getpid(), signal.SIGKILL)

    write._write_one = killed
    import_files(Store(sys.argv[1]), [sys.argv[2]], project="p")
    """
)


def test_a_killed_import_leaves_no_copy_once_the_next_import_runs(
    tmp_path: Path, seeded: Store
) -> None:
    before = snapshot(seeded)
    path = tmp_path / "killed.csv"
    path.write_text("run,step,loss\nk,0,3.0\n")
    done = subprocess.run(
        [sys.executable, "-c", KILLED_IMPORT, str(seeded.root), str(path)],
        cwd=REPO,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == -9, done.stderr
    assert snapshot(seeded)[0] == before[0]
    left = sorted(set(snapshot(seeded)[1]) - set(before[1]))
    # Only a temporary name, never the name a committed upload has.
    assert len(left) == 1 and left[0].startswith(".partial_"), left
    other = tmp_path / "after.csv"
    other.write_text("run,step,loss\nz,0,1.0\n")
    report = imported(seeded, other, "p")
    added = sorted(set(snapshot(seeded)[1]) - set(before[1]))
    assert added == [f"{report['files'][0]['sha256']}.csv"]


def test_a_live_imports_copy_is_not_swept(seeded: Store) -> None:
    """Only the copies of processes that are gone are removed."""
    from store.importers.write import _staging_name, sweep_stale_uploads

    live = _staging_name(seeded.uploads_dir / "abc.csv")
    live.write_text("x")
    assert sweep_stale_uploads(seeded.uploads_dir) == []
    assert live.exists()


# --- item 4: export of an unknown project ---------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_export_of_an_unknown_project_is_an_error(
    tmp_path: Path, seeded: Store, as_json: bool
) -> None:
    """It wrote an empty file and exited 0."""
    before = snapshot(seeded)
    out = tmp_path / "out" / "nosuch.csv"
    extra = ["--json"] if as_json else []
    code, stdout, err = cli(seeded, "export", "--project", "nosuch", "--out", str(out), *extra)
    assert (code, stdout, err) == (2, "", "error: unknown project 'nosuch'; known projects: 'p'\n")
    assert not out.exists() and not out.parent.exists()
    assert snapshot(seeded) == before


def test_export_from_an_empty_store_names_no_projects(tmp_path: Path, store: Store) -> None:
    out = tmp_path / "x.parquet"
    code, _, err = cli(store, "export", "--project", "nosuch", "--out", str(out))
    assert (code, err) == (2, "error: unknown project 'nosuch'; known projects: none yet\n")
    assert not out.exists()


# --- item 4 (and 2): the upload page shows the real error ---------------------------------


@pytest.fixture
def upload_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, bytes], Any]:
    """The dashboard's Upload page (Streamlit's AppTest) on an empty store, one file dropped."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SCALINGLAB_STORE", str(tmp_path / "page-store"))
    monkeypatch.delenv("SCALINGLAB_SCHEDULER", raising=False)

    def drop(name: str, payload: bytes) -> Any:
        at = AppTest.from_file(
            str(REPO / "app" / "dashboard" / "streamlit_app.py"), default_timeout=60
        ).run()
        at.switch_page("views/upload.py").run()
        at.file_uploader(key="upload-files").set_value((name, payload, "text/csv")).run()
        assert not at.exception, at.exception
        return at

    return drop


def mapping_boxes(at: Any) -> dict[str, str]:
    return {s.label: s.value for s in at.selectbox if s.key and "-map-" in s.key}


def test_upload_page_shows_a_row_error_and_reads_the_columns_it_knows(upload_page: Any) -> None:
    """`run`, `step`, `loss` were listed as 'not recognised' on any parse error."""
    at = upload_page("bad.csv", b"run,step,loss,extra\na,1,3.0,x\na,2,oops,y\n")
    assert [e.value for e in at.error] == [
        "Cannot import: bad.csv, line 3, column 'loss': expected a number, got 'oops'"
    ]
    captions = " ".join(c.value for c in at.caption)
    assert "not recognised" not in captions and "How the importer reads each column" in captions
    assert mapping_boxes(at) == {"run": "run", "step": "step", "loss": "loss", "extra": "(ignore)"}
    assert not [b for b in at.button if b.key == "upload-confirm"]


def test_upload_page_after_a_good_parse_offers_only_unused_columns(upload_page: Any) -> None:
    at = upload_page("ok.csv", "\ufeffrun,step,loss,extra\na,1,3.0,x\n".encode())
    assert not at.error
    assert "Detected format: **long** · 1 run(s), 1 point(s)" in [s.value for s in at.success]
    assert mapping_boxes(at) == {"extra": "(ignore)"}


def test_upload_page_refuses_a_too_large_step_without_a_traceback(upload_page: Any) -> None:
    at = upload_page("big.csv", b"run,step,loss\na,9223372036854775808,3.0\n")
    assert [e.value for e in at.error] == [
        "Cannot import: big.csv, line 2, column 'step': expected a non-negative integer below "
        f"2^63 = 9,223,372,036,854,775,808 ({BIGINT}), got '9223372036854775808'"
    ]
