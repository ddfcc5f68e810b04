"""build_bridges: the configured bridges, credentials read from the environment (never the file)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from bot.bridges.bridges import Bridges
from bot.bridges.channels import FreqtradeChannel, HummingbotChannel, WebhookChannel
from bot.config.bridges import Bridge, FreqtradeBridge, HummingbotBridge
from bot.events import JournalKind
from bot.interfaces import Journal
from bot.notify.delivery import Channel, Delivery, FailureAlerts
from bot.paging.factory import env_secret


def build_bridges(
    configs: Sequence[Bridge],
    journal: Journal,
    now_ms: Callable[[], int],
    session: str,
    env: Mapping[str, str],
    alerts: FailureAlerts,
) -> Bridges | None:
    """The Bridges notifier (None when no bridge is configured)."""
    if not configs:
        return None
    names = [c.name for c in configs]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"bridges: names must be unique; repeated: {', '.join(dupes)}")
    out: list[tuple[Bridge, Delivery]] = []
    for i, c in enumerate(configs):
        field = f"bridges[{i}]"
        channel: Channel
        if isinstance(c, FreqtradeBridge | HummingbotBridge):
            user = env_secret(env, c.username_env, f"{field}.username_env")
            password = env_secret(env, c.password_env, f"{field}.password_env")
            if isinstance(c, FreqtradeBridge):
                channel = FreqtradeChannel(c, user, password)
            else:
                channel = HummingbotChannel(c, user, password)
        else:
            channel = WebhookChannel(c, env_secret(env, c.secret_env, f"{field}.secret_env"))
        out.append((c, Delivery(channel, JournalKind.BRIDGE, journal, now_ms, c, alerts)))
    return Bridges(out, now_ms, session)
