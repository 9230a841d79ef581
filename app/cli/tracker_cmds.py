"""CLI verb `watch`: follow a folder of tracker runs and stream new points into the store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import StoreOption
from app.cli.store_cmds import open_store, user_errors


def watch(
    path: Annotated[
        Path,
        typer.Argument(
            help="A folder of TensorBoard event files or W&B offline runs (wandb/).",
            show_default=False,
        ),
    ],
    project: Annotated[str, typer.Option("--project", "-p", help="Project name.")] = "default",
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            metavar="TAG[=ROLE]",
            help="Read this tag (repeatable), as ROLE: lr, tokens, flops or a split.",
            show_default=False,
        ),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between looks at the folder.")
    ] = 2.0,
    idle_finish: Annotated[
        float,
        typer.Option(
            "--idle-finish",
            help="A TensorBoard run whose files have not grown for this many seconds is "
            "marked finished (W&B runs say when they end).",
        ),
    ] = 300.0,
    polls: Annotated[
        int | None,
        typer.Option("--polls", help="Stop after this many looks (default: until Ctrl-C)."),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Follow PATH: new points go to the store as they are written (through the inbox,
    never holding the database lock); new runs join, finished runs are marked finished."""
    from store.trackers.tags import parse_tag_options
    from store.trackers.watch import Watcher

    with user_errors():
        watcher = Watcher(
            open_store(store),
            path,
            project,
            tags=parse_tag_options(tag),
            idle_finish=idle_finish,
        )
    done = 0
    try:
        while polls is None or done < polls:
            if done:
                time.sleep(interval)
            report = watcher.poll()
            done += 1
            for name in report.joined:
                typer.echo(f"{name}: following")
            for name, status in report.finished:
                typer.echo(f"{name}: {status}")
            for problem in report.problems:
                typer.echo(f"warning: {problem} (no longer followed)", err=True)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.close()
    typer.echo(f"project {project!r}: {len(watcher.runs)} runs followed")


def register(cli: typer.Typer) -> None:
    """Add this module's verbs to the command."""
    cli.command("watch")(watch)
