"""Pieces every CLI verb shares: the --store option and the bad-input exit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="SCALINGLAB_STORE",
        help="Store folder (default: $SCALINGLAB_STORE, else ~/.scalinglab).",
        show_default=False,
    ),
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a clear message on stderr and exit (2 = bad input)."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)
