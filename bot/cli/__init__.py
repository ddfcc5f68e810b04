"""The `liqguard` command. Each subcommand lives in its own module and registers itself here.

Exit codes: 0 success, 1 unreadable input or runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

group = typer.Typer(
    name="liqguard",
    help="Detect liquidation cascades and answer them with protective strategies "
    "(paper mode by default).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_COMMAND_MODULES = (
    "backtest",
    "calibrate",
    "config_cmd",
    "detect",
    "fetch",
    "health",
    "onchain",
    "run",
)


@group.callback()
def _root() -> None:  # a group even with one subcommand: `liqguard detect FILE` keeps its name
    pass


def _load(modules: tuple[str, ...] = _COMMAND_MODULES) -> typer.Typer:
    """The group with these subcommand modules imported (importing one registers it)."""
    for name in modules:
        importlib.import_module(f"bot.cli.{name}")
    return group


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole command, every subcommand registered
        return _load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    # `liqguard detect` loads only its own module: the live bot's imports cost a batch run ~0.3 s;
    # `liqguard health` too: a probe run every few seconds must not load the trading stack
    alone = sys.argv[1:2] in (["detect"], ["health"])
    _load((sys.argv[1],) if alone else _COMMAND_MODULES)()
