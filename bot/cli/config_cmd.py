"""`liqguard config diff`: the runtime overrides of a journal against the config file.

Exit codes: 0 shown (overrides or none), 1 journal unreadable, 2 configuration error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.app.overrides import journaled
from bot.cli._group import group
from bot.cli.journal_view import reading_journal
from bot.config import ConfigError, load_settings
from bot.config.overrides import Overlay, diff_lines, replay
from bot.journal import JournalError
from bot.notify.format import utc

config_group = typer.Typer(
    name="config", help="The configuration: runtime overrides.", no_args_is_help=True
)
group.add_typer(config_group)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True, highlight=False)


@config_group.command("diff")
def diff(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="liqguard.yaml (default ./liqguard.yaml)")
    ] = None,
    journal: Annotated[
        str | None, typer.Option("--journal", help="journal path or URL (default: the file's)")
    ] = None,
) -> None:
    """Print the overrides the journal holds and what they change against the file."""
    path = config
    if path is None and Path("liqguard.yaml").is_file():
        path = Path("liqguard.yaml")
    try:
        file = load_settings(path)
    except ConfigError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None
    source = str(path or "defaults")
    try:
        with reading_journal(journal, file.journal.url) as (j, _):
            rows = journaled(j)
    except JournalError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from None
    overlay, skipped = replay(file, rows)
    changes = diff_lines(Overlay.of(file), overlay)
    out.print(f"{len(rows)} override(s) in the journal, against {source}:")
    for ov, meta in rows:
        confirmed = f", confirmed by {meta['approved_by']}" if meta.get("approved_by") else ""
        when = f"{utc(int(meta['ts_ms']))} " if meta.get("ts_ms") else ""
        out.print(f"  {when}{ov.text()} (by {meta.get('by', '?')}{confirmed})")
    for line in skipped:
        out.print(f"  skipped: {line}")
    out.print(
        "The running configuration differs from the file in:" if changes else "No difference."
    )
    for line in changes:
        out.print(f"  {line}")
