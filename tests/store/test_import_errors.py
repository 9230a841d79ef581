"""Bad input: a clear error naming file, line and column, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import Store
from store.errors import BadInputError
from store.importers import import_files

from .conftest import table_contents

GOOD = "run,step,loss,lr\na,0,3.0,0.1\na,1,2.5,0.1\n"

# name -> (file bytes, expected message pieces)
CASES: dict[str, tuple[bytes, list[str]]] = {
    "missing_loss": (b"run,step,lr\na,0,0.1\n", ["line 1", "expected a loss column"]),
    "non_numeric": (
        b"run,step,loss\na,0,3.0\na,1,2.0\na,2,abc\n",
        ["line 4", "column 'loss'", "expected a number, got 'abc'"],
    ),
    "non_numeric_after_blank_line": (
        b"run,step,loss\n\na,0,3.0\n\na,1,abc\n",
        ["line 5", "column 'loss'", "expected a number, got 'abc'"],
    ),
    "nan": (b"run,step,loss\na,0,3.0\na,1,nan\n", ["line 3", "column 'loss'", "finite", "'nan'"]),
    "inf": (b"run,step,loss\na,0,inf\n", ["line 2", "column 'loss'", "finite", "'inf'"]),
    "negative_step": (
        b"run,step,loss\na,0,3.0\n\na,-3,2.0\n",
        ["line 4", "column 'step'", "expected a non-negative integer, got '-3'"],
    ),
    "fractional_step": (
        b"run,step,loss\na,1.5,3.0\n",
        ["line 2", "column 'step'", "non-negative integer, got '1.5'"],
    ),
    "blank_loss_without_lr": (
        b"run,step,loss,lr\na,0,3.0,0.1\na,1,,\n",
        ["line 3", "column 'loss'", "blank only where lr is set"],
    ),
    "duplicate_step": (
        b"run,step,loss\na,0,3.0\na,1,2.0\na,1,2.5\n",
        ["line 4", "duplicate (run, split, step)", "line 3"],
    ),
    "not_utf8": (
        b"run,step,loss\na,0,3.0\nb\xff\xfe,1,2.0\n",
        ["line 3", "expected UTF-8", "0xff"],
    ),
    "empty": (b"", ["empty"]),
    "header_only": (b"run,step,loss\n", ["no rows"]),
    "ragged_row": (b"run,step,loss\na,0,3.0\na,1,2.0,9\n", ["line 3", "3 fields"]),
    "negative_loss": (b"run,step,loss\na,0,-1\n", ["line 2", "non-negative loss"]),
    "table_blank_loss": (b"params,tokens,loss\n1e8,2e9,\n", ["line 2", "column 'loss'"]),
    "family_changes_within_a_curve": (
        b"run,split,step,loss,family\na,eval,0,3.0,en\na,eval,1,2.0,\na,eval,2,2.0,de\n",
        ["line 4", "column 'family'", "one family per (run, split)", "'de'"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_writes_nothing(case: str, tmp_path: Path, store: Store) -> None:
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    import_files(store, [good], project="p")
    before = table_contents(store)
    uploads = sorted(store.uploads_dir.iterdir())
    data, pieces = CASES[case]
    bad = tmp_path / f"{case}.csv"
    bad.write_bytes(data)
    # The bad file comes second: the good one before it must not be written either.
    other = tmp_path / "other.csv"
    other.write_text("run,step,loss\nz,0,1.0\n")
    with pytest.raises(BadInputError) as info:
        import_files(store, [other, bad], project="p")
    message = str(info.value)
    assert message.startswith(f"{case}.csv")
    for piece in pieces:
        assert piece in message, message
    assert table_contents(store) == before
    assert sorted(store.uploads_dir.iterdir()) == uploads


def test_error_line_far_into_a_large_file(tmp_path: Path, store: Store) -> None:
    rows = [f"r{i % 3},{i // 3},{1 + 1 / (i + 1)}" for i in range(30_000)]
    rows[25_000] = "r1,8333,oops"
    bad = tmp_path / "big.csv"
    bad.write_text("run,step,loss\n" + "\n".join(rows) + "\n")
    with pytest.raises(BadInputError, match=r"big.csv, line 25002, column 'loss'"):
        import_files(store, [bad])
    rows[25_000] = "r1,8333,nan"
    bad.write_text("run,step,loss\n" + "\n".join(rows) + "\n")
    with pytest.raises(BadInputError, match=r"line 25002, column 'loss': expected a finite"):
        import_files(store, [bad])


def test_utf8_checked_across_read_chunks(tmp_path: Path, store: Store) -> None:
    """The scan reads 16 MiB at a time and decodes only chunks that are not ASCII: a
    character split across two chunks is fine, a bad byte far in still names its line."""
    from store.importers.scan import _CHUNK

    lines = [b"run,step,loss\n"]
    size = len(lines[0])
    while size < _CHUNK - 200:
        lines.append(f"a,{len(lines)},3.0\n".encode())
        size += len(lines[-1])
    # The run name's 'é' (0xc3 0xa9) starts on the last byte of the first chunk.
    lines.append(b"b" * (_CHUNK - 1 - size) + "é,0,2.0\n".encode())
    data = b"".join(lines)
    assert data[_CHUNK - 1 : _CHUNK + 1] == "é".encode()
    good = tmp_path / "split_char.csv"
    good.write_bytes(data)
    report = import_files(store, [good], project="p")
    assert report.runs == 2
    bad = tmp_path / "bad_tail.csv"
    bad.write_bytes(data[: _CHUNK - 1] + b"\xc3\x28" + data[_CHUNK + 1 :])
    with pytest.raises(BadInputError, match=rf"bad_tail.csv, line {len(lines)}: .*0xc3"):
        import_files(store, [bad], project="q")


def test_bad_options(tmp_path: Path, store: Store) -> None:
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    with pytest.raises(BadInputError, match="unknown format"):
        import_files(store, [good], format="excel")
    with pytest.raises(BadInputError, match="not in the header"):
        import_files(store, [good], mapping={"nope": "loss"})
    with pytest.raises(BadInputError, match="no such file"):
        import_files(store, [tmp_path / "missing.csv"])
    only_loss = tmp_path / "t.csv"
    only_loss.write_text("loss\n1\n")
    with pytest.raises(BadInputError, match=r"missing required column\(s\) \['step'\]"):
        import_files(store, [only_loss], format="long")
