"""`liqguard detect`: placeholder, replaced by the foundation work."""

from __future__ import annotations

from bot.cli import app


@app.command()
def detect() -> None:
    """Find liquidation anomalies in recorded tapes."""
    raise SystemExit(2)
