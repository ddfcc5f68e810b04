"""The `liqguard` typer group: each command module registers its command on it."""

from __future__ import annotations

import typer

group = typer.Typer(
    name="liqguard",
    help="Detect liquidation cascades and answer them with protective strategies "
    "(paper mode by default).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@group.callback()
def _root() -> None:  # a group even with one subcommand: `liqguard detect FILE` keeps its name
    pass
