"""Local exchanges on 127.0.0.1 for the live-venue tests and the reaction benchmark.

- binance.LocalBinance: Binance USD-M REST + `!forceOrder@arr` websocket, for real ccxt
- fakes.LocalBybit / fakes.LocalOkx: public liquidation websockets of Bybit and OKX
- okx.LocalOkx: OKX REST v5 account and orders (signed, contracts `sz`, `clOrdId`)
- bybit.LocalBybitRest: Bybit REST v5 unified account and orders (signed, `orderLinkId`)
- deribit.LocalDeribit: Deribit options: buy/sell by label, positions, open orders, cancels
- serve(app): run an aiohttp app on a free loopback port
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from pydantic import SecretStr

from bot.secrets import Secrets


def local_secrets(key: str = "test-key", secret: str = "test-secret") -> Secrets:
    """Binance keys for the local exchange, whatever the environment holds."""
    return Secrets(  # type: ignore[call-arg]
        _env_file=None, binance_api_key=SecretStr(key), binance_api_secret=SecretStr(secret)
    )


@asynccontextmanager
async def serve(app: web.Application, port: int = 0) -> AsyncIterator[int]:
    """Serve `app` on 127.0.0.1 and `port` (0: a free one); yield the port."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        yield port
    finally:
        await runner.cleanup()
