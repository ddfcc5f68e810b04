"""Build the on-chain sources of a config: one OnchainSource per entry of `chains:`.

Contents: rpc_urls(name, chain, secrets) -> (http, ws); create_reader(...);
create_onchain_sources(settings, secrets, journal) -> list[LiveSource].
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.config.chains import ChainConfig
from bot.config.errors import ConfigError
from bot.config.settings import Settings
from bot.events import Liquidation
from bot.interfaces import Journal, LiveSource
from bot.logs import register_secrets
from bot.secrets import Secrets
from bot.sources.onchain.history import LogReader
from bot.sources.onchain.live import OnchainSource
from bot.sources.onchain.rpc import http_web3

SECRET_CHAIN = "ethereum"  # the chain LIQGUARD_ETH_RPC_HTTP / LIQGUARD_ETH_RPC_WS belong to


def rpc_urls(name: str, chain: ChainConfig, secrets: Secrets | None) -> tuple[str, str | None]:
    """The chain's HTTP and websocket URLs (secrets first); registered for log redaction."""
    http, ws = chain.rpc_http, chain.rpc_ws
    if secrets is not None and name == SECRET_CHAIN:
        if secrets.eth_rpc_http is not None and secrets.eth_rpc_http.get_secret_value():
            http = secrets.eth_rpc_http.get_secret_value()
        if secrets.eth_rpc_ws is not None and secrets.eth_rpc_ws.get_secret_value():
            ws = secrets.eth_rpc_ws.get_secret_value()
    if not http:
        where = (
            "set LIQGUARD_ETH_RPC_HTTP in the environment or .env"
            if name == SECRET_CHAIN
            else f"set chains.{name}.rpc_http"
        )
        raise ConfigError(f"chains.{name}: no HTTP RPC URL: {where} (an archive node for history)")
    if ws is not None and not ws.startswith(("ws://", "wss://")):
        raise ConfigError(f"chains.{name}.rpc_ws: a websocket URL starts with ws:// or wss://")
    register_secrets(u for u in (http, ws) if u)  # they often embed an API key
    return http, ws


def create_reader(name: str, chain: ChainConfig, secrets: Secrets | None) -> LogReader:
    http, _ = rpc_urls(name, chain, secrets)
    return LogReader(http_web3(http, chain.timeout_s), name, chain)


def create_onchain_sources(
    settings: Settings,
    secrets: Secrets | None,
    journal: Journal,
    on_unconfirmed: Callable[[Liquidation], Awaitable[None]] | None = None,
) -> list[LiveSource]:
    """One live source per configured chain (none when `chains:` is empty)."""
    sources: list[LiveSource] = []
    for name, chain in settings.chains.items():
        http, ws = rpc_urls(name, chain, secrets)
        w3 = http_web3(http, chain.timeout_s)
        reader = LogReader(w3, name, chain)  # the source journals rejected logs itself
        sources.append(OnchainSource(name, reader, journal, ws, on_unconfirmed=on_unconfirmed))
    return sources
