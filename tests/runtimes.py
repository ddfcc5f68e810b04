"""The real wiring on a replay for tests: an sqlite journal under tmp_path, auto approvals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.app.wiring import Runtime, build
from bot.config.settings import Settings
from bot.interfaces import Notifier
from bot.secrets import Secrets

# a pager's or bridge's delivery settings that give up within a test's patience
FAST = {"retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 5}
# level 1 reduces, level 2 halts, both without asking: the ladder the pagers and bridges follow
HALT_POLICY = {
    "levels": {
        1: [{"strategy": "halt", "params": {"state": "REDUCING"}, "approval": "auto"}],
        2: [{"strategy": "halt", "params": {"state": "HALTED"}, "approval": "auto"}],
    },
    "calm": [],
}


def replay_runtime(
    tmp_path: Path, notifier: Notifier, identity: str, env: dict[str, str], **sections: Any
) -> Runtime:
    """A replay runtime of these settings sections, telling only `notifier`, reading `env`."""
    return build(
        Settings(**sections),
        Secrets(_env_file=None),  # type: ignore[call-arg]
        mode="replay",
        identity=identity,
        journal_url=f"sqlite:///{tmp_path / 'journal.db'}",
        approvals="auto",
        notifiers=[notifier],
        env=env,
    )
