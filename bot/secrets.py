"""Secrets from the environment or `.env`: never in liqguard.yaml, never in a log line.

Every secret is a SecretStr; `all_secret_values()` feeds the log redaction filter.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Secrets(BaseSettings):
    """`LIQGUARD_*` variables (see `.env.example`)."""

    model_config = SettingsConfigDict(
        env_prefix="LIQGUARD_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    binance_api_key: SecretStr | None = None
    binance_api_secret: SecretStr | None = None
    bybit_api_key: SecretStr | None = None
    bybit_api_secret: SecretStr | None = None
    okx_api_key: SecretStr | None = None
    okx_api_secret: SecretStr | None = None
    okx_api_password: SecretStr | None = None
    deribit_api_key: SecretStr | None = None
    deribit_api_secret: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    approval_hmac_key: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    eth_rpc_http: SecretStr | None = None  # provider URLs often embed an API key
    eth_rpc_ws: SecretStr | None = None
    # not a secret (an address is public on-chain): kept out of the config file on purpose
    hyperliquid_accounts: str | None = None
    tardis_api_key: SecretStr | None = None  # `fetch tardis`: days other than the 1st of a month

    def all_secret_values(self) -> list[str]:
        values = []
        for name in type(self).model_fields:
            v = getattr(self, name)
            if isinstance(v, SecretStr) and v.get_secret_value():
                values.append(v.get_secret_value())
        return values


def load_secrets(env_file: str | None = ".env") -> Secrets:
    return Secrets(_env_file=env_file)  # type: ignore[call-arg]
