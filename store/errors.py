"""The errors a user may see. Every other package raises these (or subclasses)."""

from __future__ import annotations


class ScalinglabError(Exception):
    """Base of every error shown to the user; the CLI maps it to exit code 2."""


class BadInputError(ScalinglabError):
    """Input the user gave is wrong: names the file, line and column when known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class NotEnoughDataError(BadInputError):
    """The selection holds too little data yet: no points, no finished runs, or fewer
    points than the law has free parameters. A scheduled job waits instead of failing."""


class StoreBusyError(ScalinglabError):
    """The store stayed locked by another process past the retry budget."""


class StoreUnusableError(ScalinglabError):
    """The store cannot be used as asked: its database file is damaged or not a DuckDB
    file, `--store` names a file or a folder this user cannot write, or its schema is
    newer than this code (readable, but refused for writing)."""
