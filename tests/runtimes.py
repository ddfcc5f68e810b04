"""The real wiring on a replay for tests: an sqlite journal under tmp_path, auto approvals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.app.wiring import Runtime, build
from bot.config.settings import Settings
from bot.interfaces import Notifier
from bot.secrets import Secrets


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
