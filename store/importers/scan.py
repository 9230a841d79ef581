"""Reading a raw upload safely: hash, UTF-8 check, emptiness, header, line numbers.

One pass over the bytes gives the SHA-256 (the upload's identity) and finds the first
byte that is not UTF-8, so the error can name its line. Line numbers are 1-based and
count the header as line 1, as a text editor shows them.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from store.errors import BadInputError

_CHUNK = 16 << 20


@dataclass(frozen=True)
class ScannedFile:
    """What one pass over the file found."""

    path: Path
    sha256: str
    size: int
    header: list[str]
    delimiter: str
    header_lines: int  # physical lines taken by leading '#' comments and the header


def scan(path: Path) -> ScannedFile:
    """Hash the file and check it is non-empty UTF-8 text with a header line."""
    if not path.is_file():
        raise BadInputError("no such file", file=str(path))
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    head = b""
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
            if len(head) < 1 << 16:
                head += chunk[: (1 << 16) - len(head)]
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise BadInputError(
                "expected UTF-8 text, but the file ends inside a multi-byte character",
                file=path.name,
                line=_line_of(path, offset),
            ) from None
    header, delimiter, header_lines = _header(path, head.decode("utf-8", errors="replace"))
    return ScannedFile(path, digest.hexdigest(), offset, header, delimiter, header_lines)


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


def _header(path: Path, text: str) -> tuple[list[str], str, int]:
    """The header fields, the delimiter and how many physical lines precede the data."""
    lines = text.splitlines()
    skipped = 0
    while skipped < len(lines) and (not lines[skipped].strip() or lines[skipped].startswith("#")):
        skipped += 1
    if skipped >= len(lines):
        raise BadInputError(
            "the file is empty; expected a header line and at least one row", file=path.name
        )
    first = lines[skipped]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    fields = next(csv.reader([first], delimiter=delimiter))
    fields = [f.strip() for f in fields]
    if len(lines) <= skipped + 1 or not any(line.strip() for line in lines[skipped + 1 :]):
        raise BadInputError(
            "the file has a header but no rows; expected at least one data row",
            file=path.name,
            line=skipped + 2,
        )
    if any(not f for f in fields):
        raise BadInputError(
            "the header has an empty column name; expected a name for every column",
            file=path.name,
            line=skipped + 1,
        )
    return fields, delimiter, skipped + 1


def record_location(scanned: ScannedFile, index: int, column: str) -> tuple[int, str]:
    """The physical line (1-based) of data record `index` (0-based) and its raw cell.

    Used only when reporting an error, so a plain pass with the csv module is fine.
    """
    with scanned.path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=scanned.delimiter)
        header: list[str] | None = None
        seen = -1
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            if header is None:
                if row[0].startswith("#"):
                    continue
                header = [c.strip() for c in row]
                continue
            seen += 1
            if seen == index:
                pos = header.index(column) if column in header else -1
                cell = row[pos] if 0 <= pos < len(row) else ""
                return reader.line_num, cell
    return scanned.header_lines + index + 1, ""


def read_text_head(path: Path, n: int = 5) -> str:
    """The first `n` lines of a file (for previews and messages)."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        return "".join(io.StringIO(fh.read(1 << 16)).readlines()[:n])
