"""The `liqguard` command. Each subcommand lives in its own module and registers itself here.

Exit codes: 0 success, 1 unreadable input or runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="liqguard",
    help="Detect liquidation cascades and answer them with protective strategies "
    "(paper mode by default).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:  # a group even with one subcommand: `liqguard detect FILE` keeps its name
    pass


# Subcommand modules: importing one registers its command on `app`.
from bot.cli import detect as _detect  # noqa: E402,F401
from bot.cli import onchain as _onchain  # noqa: E402,F401
from bot.cli import run as _run  # noqa: E402,F401


def main() -> None:
    app()
