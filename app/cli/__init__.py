"""The `scalinglab` command. Each verb group lives in its own module with `register(cli)`."""

from __future__ import annotations

import typer

from app.cli import (
    allocate_cmds,
    fit_cmds,
    fits_cmds,
    serve_cmds,
    store_cmds,
    tracker_cmds,
    train_cmds,
)
from app.cli.common import plain_help
from store.errors import ScalinglabError

cli = typer.Typer(
    name="scalinglab",
    help="Train model families, store their loss curves, fit scaling laws, and explore them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (
    store_cmds,
    fit_cmds,
    fits_cmds,
    allocate_cmds,
    train_cmds,
    serve_cmds,
    tracker_cmds,
):
    _module.register(cli)
plain_help(cli)  # after every verb is registered: one help style for all of them


def main() -> None:
    """Console-script entry: user-facing errors exit 2 with the message on stderr."""
    import sys

    try:
        cli()
    except ScalinglabError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
