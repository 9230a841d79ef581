"""Pieces every CLI verb shares: the --store option, the bad-input exit, and the help
style of every command (`plain_help`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

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


# --- help style ------------------------------------------------------------------------
# Recent Typer versions print `<bool>` beside every flag and `{law}` for a required
# argument in the usage line. Every command gets the usual style instead: flags without
# a type, and `LAW` / `[RUN]` as in click.


class _PlainOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.is_flag else super().display_type_rich(ctx)


class _PlainArgument(TyperArgument):
    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return f"{name}..." if self.nargs != 1 else name


def _plain(param: Any) -> Any:
    # Typer builds its own parameter objects; giving them the subclass keeps every other
    # behaviour (parsing, defaults, envvars) exactly Typer's.
    if isinstance(param, TyperOption) and not isinstance(param, _PlainOption):
        param.__class__ = _PlainOption
    elif isinstance(param, TyperArgument) and not isinstance(param, _PlainArgument):
        param.__class__ = _PlainArgument
    return param


class PlainCommand(TyperCommand):
    """A command with the plain help style. ``late_help`` maps a parameter name to a
    function whose text is added to its help when help is shown, so a text built from the
    law registry costs nothing on the other calls."""

    late_help: ClassVar[dict[str, Callable[[], str]]] = {}

    def get_params(self, ctx: Any) -> list[Any]:
        return [_plain(p) for p in super().get_params(ctx)]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            more = self.late_help.get(param.name or "")
            if more is not None and not getattr(param, "_late_help_added", False):
                param.help = f"{param.help or ''} {more()}".strip()
                param._late_help_added = True  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)


class PlainGroup(TyperGroup):
    """A command group with the plain help style."""

    def get_params(self, ctx: Any) -> list[Any]:
        return [_plain(p) for p in super().get_params(ctx)]


def with_late_help(**texts: Callable[[], str]) -> type[PlainCommand]:
    """A PlainCommand class whose parameters get these help texts when help is shown."""
    return type("PlainCommandWithLateHelp", (PlainCommand,), {"late_help": texts})


def plain_help(cli: typer.Typer) -> None:
    """Give every command and group of ``cli`` (sub-apps included) the plain help style,
    unless a verb chose its own class."""
    # Typer fills in its own base classes (or a placeholder) where a verb chose none.
    if not cli.info.cls or cli.info.cls is TyperGroup:
        cli.info.cls = PlainGroup
    for command in cli.registered_commands:
        if not command.cls or command.cls is TyperCommand:
            command.cls = PlainCommand
    for group in cli.registered_groups:
        if not group.cls or group.cls is TyperGroup:
            group.cls = PlainGroup
        if group.typer_instance is not None:
            plain_help(group.typer_instance)
