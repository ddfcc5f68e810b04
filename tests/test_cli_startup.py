"""`liqguard detect` starts without loading the live bot, every settings model or pandas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.cli.detect import build_rules
from bot.config.rules import RuleConfig

ROOT = Path(__file__).resolve().parent.parent
TAPE = ROOT / "tests" / "fixtures" / "bad_rows.csv"
HEAVY = ("sqlalchemy", "bot.config.settings", "bot.engine.orchestrator", "pandas", "matplotlib",
         "ccxt", "telegram", "pyarrow.compute")  # fmt: skip


def imported(stderr: str) -> set[str]:
    """The modules `python -X importtime` reported loading."""
    lines = [line.split("|") for line in stderr.splitlines() if line.startswith("import time:")]
    return {parts[-1].strip() for parts in lines if len(parts) == 3}


def test_detect_without_config_uses_one_rule_over_every_venue() -> None:
    # a tape on its own: the detector contract's rule ($1M, 1h, x2, 2h), whatever its venues;
    # the bot's default config splits exchanges and DeFi (docs/detecting.md)
    assert build_rules(None, {}) == (RuleConfig(),)
    assert RuleConfig().threshold_usd == 1_000_000 and not RuleConfig().venues


def test_detect_loads_only_what_it_needs(tmp_path: Path) -> None:
    clean = tmp_path / "clean.csv"  # parsed by Arrow, not the row parser (bad_rows.csv is)
    header, first = TAPE.read_text().splitlines()[:2]
    clean.write_text(header + "\n" + (first + "\n") * 100)
    for tape in (TAPE, clean):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "bot.cli", "detect", str(tape), "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        loaded = imported(done.stderr)
        assert "bot.sources.columnar" in loaded  # the probe sees the run's imports
        assert not loaded & set(HEAVY)
        assert "events read:" in done.stderr
