"""The live broker on OKX through real ccxt: base units in, contracts (`sz`) on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import SecretStr

from bot.brokers.ccxt_broker import CcxtBroker
from bot.brokers.client_ids import venue_client_id
from bot.ccxt.exchange import make_exchange
from bot.config.venues import EndpointsConfig, VenueConfig
from bot.events import OrderIntent
from bot.secrets import Secrets
from bot.sim.localexchange import serve
from bot.sim.localexchange.okx import OKX_KEYS, LocalOkx, okx_swap_market

CT_VAL = okx_swap_market()["contractSize"]


def okx_secrets() -> Secrets:
    key, secret, passphrase = OKX_KEYS
    return Secrets(  # type: ignore[call-arg]
        _env_file=None,
        okx_api_key=SecretStr(key),
        okx_api_secret=SecretStr(secret),
        okx_api_password=SecretStr(passphrase),
    )


@asynccontextmanager
async def okx_broker(server: LocalOkx, **kw: Any) -> AsyncIterator[CcxtBroker]:
    async with serve(server.app) as port:
        cfg = VenueConfig(
            endpoints=EndpointsConfig(rest=f"http://127.0.0.1:{port}", allow_insecure=True),
            request_timeout_s=kw.pop("timeout_s", 5.0),
        )
        ex = make_exchange("okx", cfg, okx_secrets(), [okx_swap_market()])
        ex.enableRateLimit = False
        broker = CcxtBroker("okx", ex, **{"accept_window_s": 0.2, **kw})
        try:
            yield broker
        finally:
            await broker.close()


def sell(amount: float, **kw: Any) -> OrderIntent:
    base: dict[str, Any] = {
        "venue": "okx",
        "symbol": "BTC-USDT-SWAP",
        "side": "sell",
        "kind": "market",
        "amount": amount,
        "reduce_only": True,
    }
    return OrderIntent(**{**base, **kw})


async def test_okx_reduce_sends_contracts_and_reads_base_units_back() -> None:
    server = LocalOkx()
    held_btc = 0.5
    server.positions["BTC-USDT-SWAP"] = held_btc / CT_VAL  # the venue holds contracts
    async with okx_broker(server) as broker:
        before = await broker.refresh()
        result = await broker.submit(sell(held_btc / 2), "lgokx-0")
        after = await broker.refresh()
    (create,) = server.creates()
    assert float(create["sz"]) == pytest.approx(held_btc / 2 / CT_VAL)  # contracts on the wire
    assert create["clOrdId"] == venue_client_id("lgokx-0", "okx") and create["reduceOnly"] is True
    assert before.positions[0].size == pytest.approx(held_btc)  # base units in the portfolio
    assert result.status == "filled" and result.fills[0].amount == pytest.approx(held_btc / 2)
    assert result.fills[0].price == server.marks["BTC-USDT-SWAP"]
    assert after.positions[0].size == pytest.approx(held_btc / 2)
    reads = [p.get("ordType") for m, path, p in server.requests if "orders-algo" in path]
    assert reads == ["conditional", "conditional"]  # stop orders are read too


async def test_okx_amount_below_one_step_is_refused_before_sending() -> None:
    server = LocalOkx()
    server.positions["BTC-USDT-SWAP"] = 10.0
    step_btc = okx_swap_market()["limits"]["amount"]["min"] * CT_VAL
    async with okx_broker(server) as broker:
        result = await broker.submit(sell(step_btc * 0.4), "lgokx-1")
    assert result.status == "rejected" and "below its minimum" in result.error
    assert server.creates() == []


async def test_okx_resting_limit_is_an_open_order_in_base_units_and_cancels_by_client_id() -> None:
    server = LocalOkx()
    server.positions["BTC-USDT-SWAP"] = 40.0
    mark = server.marks["BTC-USDT-SWAP"]
    async with okx_broker(server) as broker:
        placed = await broker.submit(sell(0.2, kind="limit", price=mark * 1.05), "lgokx-2")
        book = await broker.refresh()
        cancel = sell(0.2, kind="cancel", cancel_client_id="lgokx-2")
        canceled = await broker.submit(cancel, "lgokx-3")
    assert placed.status == "open"
    assert [(o.client_id, o.amount) for o in book.open_orders] == [
        (venue_client_id("lgokx-2", "okx"), pytest.approx(0.2))
    ]
    assert float(server.creates()[0]["sz"]) == pytest.approx(0.2 / CT_VAL)
    assert float(server.creates()[0]["px"]) == pytest.approx(round(mark * 1.05, 1))
    assert canceled.status == "canceled" and server.orders[0]["state"] == "canceled"


async def test_okx_hedge_lost_in_flight_is_reported_unknown_never_resent() -> None:
    server = LocalOkx()
    server.http_errors["/api/v5/trade/batch-orders"] = [503]  # the create: no answer
    server.http_errors["/api/v5/trade/order"] = [503]  # the lookup fails too
    async with okx_broker(server, read_attempts=1) as broker:
        result = await broker.submit(sell(0.1, reduce_only=False), "lgokx-4")
    assert result.status == "failed" and result.error.startswith("outcome unknown")
    assert result.outcome_unknown
    assert "lookup failed" in result.error
    assert len(server.creates()) == 1
