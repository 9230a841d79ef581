"""Reading a raw upload safely: hash, UTF-8 check, emptiness, header, line numbers.

One pass over the bytes gives the SHA-256 (the upload's identity), finds the first
byte that is not UTF-8 and the first line longer than the CSV reader takes, so the error
can name its line. Line numbers are 1-based and count every physical line (blank lines,
comments, the lines inside a quoted multi-line cell), as a text editor shows them. A
UTF-8 byte-order mark (Excel writes one) is not part of the first column's name.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from store.errors import BadInputError

_CHUNK = 16 << 20
# DuckDB's `read_csv` refuses longer lines; far longer ones it dropped without a word, so
# the scan refuses every one of them first. In bytes, without the line break.
MAX_LINE_BYTES = 2_000_000
# Blocks smaller than the limit: a line longer than it spans a block without a newline.
_BLOCK = 1 << 20
_BOM = "\ufeff"


@dataclass(frozen=True)
class ScannedFile:
    """What one pass over the file found."""

    path: Path
    sha256: str
    size: int
    header: list[str]
    delimiter: str
    header_lines: int  # physical lines taken by leading '#' comments and the header
    # Placeholder names of columns whose header cell is blank (a W&B chart's blank
    # series); such a column is dropped when it holds no values (see `csvread`).
    empty: tuple[str, ...] = ()
    kind: str = "csv"  # or "parquet" (`store.importers.parquet`): rows, not lines

    @property
    def named(self) -> list[str]:
        """The header without the placeholders of blank names."""
        return [h for h in self.header if h not in self.empty]


def scan(path: Path) -> ScannedFile:
    """Hash the file and check it is non-empty UTF-8 text with a header line."""
    if not path.is_file():
        raise BadInputError("no such file", file=str(path))
    from store.importers import parquet

    if parquet.is_parquet(path):
        return parquet.scan_parquet(path)
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    last_newline = -1
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            # Numbers and names are nearly always ASCII, which is valid UTF-8 as it is:
            # only decode a chunk that is not, or one that continues a split character.
            pending = decoder.getstate()[0]
            if pending or not chunk.isascii():
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as err:
                    # The error's position counts the bytes carried from the last chunk.
                    _raise_not_utf8(path, offset - len(pending) + err.start)
            last_newline = _check_line_lengths(path, chunk, offset, last_newline)
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise BadInputError(
                "expected UTF-8 text, but the file ends inside a multi-byte character",
                file=path.name,
                line=_line_of(path, offset),
            ) from None
    if offset - last_newline - 1 > MAX_LINE_BYTES:
        _raise_too_long(path, last_newline + 1, offset - last_newline - 1)
    header, delimiter, header_lines = _header(path)
    empty = tuple(empty_name(i) for i, name in enumerate(header) if not name)
    header = [name or empty_name(i) for i, name in enumerate(header)]
    return ScannedFile(path, digest.hexdigest(), offset, header, delimiter, header_lines, empty)


def empty_name(index: int) -> str:
    """The placeholder for the blank header cell of 0-based column `index`."""
    return f"(no name, column {index + 1})"


def _check_line_lengths(path: Path, chunk: bytes, offset: int, last_newline: int) -> int:
    """Fail on a line longer than MAX_LINE_BYTES; return the last newline's position.

    Two byte searches per block, so the cost does not grow with the number of lines:
    within a block every gap between newlines is shorter than the limit, so only the
    gap from the last newline seen to a block's first one needs measuring.
    """
    for start in range(0, len(chunk), _BLOCK):
        end = min(start + _BLOCK, len(chunk))
        first = chunk.find(b"\n", start, end)
        if first < 0:
            continue
        length = offset + first - last_newline - 1
        length -= first > 0 and chunk[first - 1] == 0x0D  # a CRLF break is no content
        if length > MAX_LINE_BYTES:
            _raise_too_long(path, last_newline + 1, length)
        last_newline = offset + chunk.rfind(b"\n", start, end)
    return last_newline


def _raise_too_long(path: Path, line_start: int, length: int) -> None:
    raise BadInputError(
        f"expected lines of at most {MAX_LINE_BYTES:,} bytes, got one of {length:,} bytes",
        file=path.name,
        line=_line_of(path, line_start),
    )


def _line_of(path: Path, position: int) -> int:
    """The 1-based line holding byte `position` (read again: only on the error path)."""
    newlines = 0
    with path.open("rb") as fh:
        while position > 0 and (chunk := fh.read(min(_CHUNK, position))):
            newlines += chunk.count(b"\n")
            position -= len(chunk)
    return newlines + 1


def _raise_not_utf8(path: Path, position: int) -> None:
    with path.open("rb") as fh:
        fh.seek(max(0, position - (1 << 16)))
        before = fh.read(min(position, 1 << 16))
        bad = fh.read(1)
    line_start = before.rfind(b"\n") + 1
    raise BadInputError(
        f"expected UTF-8 text, found byte 0x{bad[0]:02x} at character "
        f"{len(before) - line_start + 1} (save the file as UTF-8)",
        file=path.name,
        line=_line_of(path, position),
    )


def _header(path: Path) -> tuple[list[str], str, int]:
    """The header fields, the delimiter and how many physical lines precede the data.

    Read line by line, so any amount of leading comments is skipped (every line is
    shorter than MAX_LINE_BYTES by now).
    """
    skipped = 0
    with path.open(encoding="utf-8-sig", newline="") as fh:
        lines = iter(fh)
        first = next(lines, None)
        while first is not None and (not first.strip() or first.startswith("#")):
            skipped += 1
            first = next(lines, None)
        if first is None:
            raise BadInputError(
                "the file is empty; expected a header line and at least one row", file=path.name
            )
        has_rows = any(line.strip() for line in lines)
    first = first.rstrip("\r\n")
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    with _long_fields():
        fields = next(csv.reader([first], delimiter=delimiter))
    fields = [f.strip() for f in fields]
    if not has_rows:
        raise BadInputError(
            "the file has a header but no rows; expected at least one data row",
            file=path.name,
            line=skipped + 2,
        )
    return fields, delimiter, skipped + 1


@dataclass(frozen=True)
class Record:
    """One data record as the file has it: its index, first physical line and cells."""

    index: int
    line: int
    cells: list[str]

    def line_of(self, position: int) -> int:
        """The physical line cell `position` starts on (a quoted cell may span lines)."""
        return self.line + sum(cell.count("\n") for cell in self.cells[:position])


@contextmanager
def _long_fields() -> Iterator[None]:
    """Let the csv module read cells as long as a line may be (its default is 128 kB)."""
    before = csv.field_size_limit()
    csv.field_size_limit(max(before, 4 * MAX_LINE_BYTES))
    try:
        yield
    finally:
        csv.field_size_limit(before)


def records(scanned: ScannedFile) -> Iterator[tuple[list[str], Record]]:
    """(header, record) for every data record, in file order; for error reports only."""
    with _long_fields(), scanned.path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=scanned.delimiter)
        header: list[str] | None = None
        index, end = -1, 0
        for row in reader:
            start, end = end + 1, reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if header is None:
                if row[0].startswith("#"):
                    continue
                header = [c.strip() for c in row]
                continue
            index += 1
            yield header, Record(index, start, row)


def record_location(scanned: ScannedFile, index: int, column: str) -> tuple[int, str]:
    """The physical line (1-based) of `column`'s cell in data record `index` (0-based),
    and the cell as written.

    Used only when reporting an error, so a plain pass with the csv module is fine.
    """
    if scanned.kind != "csv":
        from store.importers.parquet import row_location

        return row_location(scanned, index, column)
    pos = scanned.header.index(column) if column in scanned.header else -1
    for _, record in records(scanned):
        if record.index == index:
            if 0 <= pos < len(record.cells):
                return record.line_of(pos), record.cells[pos]
            return record.line, ""
    return scanned.header_lines + index + 1, ""


def find_record(scanned: ScannedFile, cells: list[str]) -> Record | None:
    """The first data record with exactly these cells (to place a row DuckDB rejected)."""
    return next((record for _, record in records(scanned) if record.cells == cells), None)


def read_text_head(path: Path, n: int = 5) -> str:
    """The first `n` lines of a file (for previews and messages)."""
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        return "".join(io.StringIO(fh.read(1 << 16)).readlines()[:n])
