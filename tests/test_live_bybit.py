"""The live broker on Bybit (unified account) through real ccxt: client ids are `orderLinkId`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import SecretStr

from bot.brokers.ccxt_broker import CcxtBroker
from bot.ccxt.exchange import make_exchange
from bot.config.venues import EndpointsConfig, VenueConfig
from bot.events import OrderIntent
from bot.secrets import Secrets
from bot.sim.localexchange import serve
from bot.sim.localexchange.bybit import BYBIT_KEYS, LocalBybitRest
from bot.sim.localexchange.markets import bybit_markets


def bybit_market() -> dict[str, Any]:
    m = dict(bybit_markets()[0])
    m["precision"] = {"amount": 0.001, "price": 0.1}
    m["limits"] = {"amount": {"min": 0.001, "max": None}}
    return m


@asynccontextmanager
async def bybit_broker(server: LocalBybitRest, **kw: Any) -> AsyncIterator[CcxtBroker]:
    key, secret = BYBIT_KEYS
    sec = Secrets(  # type: ignore[call-arg]
        _env_file=None, bybit_api_key=SecretStr(key), bybit_api_secret=SecretStr(secret)
    )
    async with serve(server.app) as port:
        cfg = VenueConfig(
            endpoints=EndpointsConfig(rest=f"http://127.0.0.1:{port}", allow_insecure=True),
            request_timeout_s=kw.pop("timeout_s", 5.0),
            recv_window_ms=500,
        )
        ex = make_exchange("bybit", cfg, sec, [bybit_market()])
        ex.enableRateLimit = False
        broker = CcxtBroker("bybit", ex, **{"accept_window_s": 0.6, **kw})
        try:
            yield broker
        finally:
            await broker.close()


def order(**kw: Any) -> OrderIntent:
    base: dict[str, Any] = {
        "venue": "bybit",
        "symbol": "BTCUSDT",
        "side": "sell",
        "kind": "market",
        "amount": 0.2,
        "reduce_only": True,
    }
    return OrderIntent(**{**base, **kw})


async def test_bybit_reduce_only_market_reads_its_fill_by_order_link_id() -> None:
    server = LocalBybitRest()
    server.positions["BTCUSDT"] = 0.5
    async with bybit_broker(server) as broker:
        before = await broker.refresh()
        result = await broker.submit(order(), "lgby-0")
    (create,) = server.creates()
    assert create["orderLinkId"] == "lgby-0" and create["reduceOnly"] is True
    assert float(create["qty"]) == pytest.approx(0.2)
    assert create["category"] == "linear"
    assert before.positions[0].size == pytest.approx(0.5) and before.balance_usd == 25_000
    assert result.status == "filled" and result.fills[0].amount == pytest.approx(0.2)
    assert server.positions["BTCUSDT"] == pytest.approx(0.3)


async def test_bybit_timeout_after_acceptance_is_found_not_rejected_not_resent() -> None:
    server = LocalBybitRest()
    server.positions["BTCUSDT"] = 0.5
    server.delay_next_orders = [1.0]
    async with bybit_broker(server, timeout_s=0.3) as broker:
        result = await broker.submit(order(), "lgby-1")
    assert result.status == "filled" and not result.error
    assert len(server.creates()) == 1
    lookups = [p for m, path, p in server.requests if path == "/v5/order/history"]
    assert lookups and lookups[0]["orderLinkId"] == "lgby-1"


async def test_bybit_cancel_by_client_id_and_reconcile() -> None:
    server = LocalBybitRest()
    server.positions["BTCUSDT"] = 0.5
    async with bybit_broker(server) as broker:
        placed = await broker.submit(order(kind="limit", price=99_000.0), "lgby-2")
        rec = await broker.reconcile([("lgby-2", order(kind="limit")), ("lgby-9", order())])
        canceled = await broker.submit(order(kind="cancel", cancel_client_id="lgby-2"), "lgby-3")
        again = await broker.submit(order(kind="cancel", cancel_client_id="lgby-2"), "lgby-4")
    assert placed.status == "open"
    assert rec.found["lgby-2"].status == "open" and rec.missing == ["lgby-9"]
    assert [o.client_id for o in rec.open_orders] == ["lgby-2"]
    cancels = [p for m, path, p in server.requests if path == "/v5/order/cancel"]
    assert cancels[0]["orderLinkId"] == "lgby-2" and "clientOrderId" not in cancels[0]
    assert canceled.status == "canceled" and server.orders[0]["orderStatus"] == "Cancelled"
    assert again.status == "rejected" and again.error.startswith("OrderNotFound")
