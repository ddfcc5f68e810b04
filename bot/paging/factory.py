"""build_pagers: the configured pagers, their keys read from the environment (never the file)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bot.config.paging import PagingConfig
from bot.events import JournalKind
from bot.interfaces import Journal
from bot.logs import register_secrets
from bot.notify.delivery import Delivery, FailureAlerts
from bot.paging.channels import ChartSource, EmailChannel, OpsgenieChannel, PagerDutyChannel
from bot.paging.pagers import Pagers


def env_secret(env: Mapping[str, str], name: str, field: str) -> str:
    """The value of `name` in the environment, registered for redaction; a ValueError that
    names the field and the variable when it is unset."""
    value = env.get(name, "").strip()
    if not value:
        raise ValueError(
            f"{field}: the environment variable {name} is not set; export it (or put it in "
            f".env), or remove the section"
        )
    register_secrets([value])
    return value


def build_pagers(
    config: PagingConfig,
    journal: Journal,
    now_ms: Callable[[], int],
    session: str,
    env: Mapping[str, str],
    alerts: FailureAlerts,
    chart: ChartSource | None = None,
) -> Pagers | None:
    """The Pagers notifier (None when no pager is configured); registers it with `alerts`."""
    if not config.enabled:
        return None
    deliveries: list[Delivery] = []
    if (pd := config.pagerduty) is not None:
        key = env_secret(env, pd.routing_key_env, "paging.pagerduty.routing_key_env")
        deliveries.append(
            Delivery(PagerDutyChannel(pd, key), JournalKind.PAGE, journal, now_ms, pd, alerts)
        )
    if (og := config.opsgenie) is not None:
        key = env_secret(env, og.api_key_env, "paging.opsgenie.api_key_env")
        deliveries.append(
            Delivery(OpsgenieChannel(og, key), JournalKind.PAGE, journal, now_ms, og, alerts)
        )
    if (em := config.email) is not None:
        user = (
            env_secret(env, em.username_env, "paging.email.username_env")
            if em.username_env
            else None
        )
        password = (
            env_secret(env, em.password_env, "paging.email.password_env")
            if em.password_env
            else None
        )
        channel = EmailChannel(em, user, password, chart)
        deliveries.append(Delivery(channel, JournalKind.PAGE, journal, now_ms, em, alerts))
    pagers = Pagers(config, deliveries, journal, now_ms, session)
    alerts.pagers.append(pagers)
    return pagers
