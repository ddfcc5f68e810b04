"""Orders over Binance's WebSocket API (`exchanges.venues.binance.order_transport: websocket`):
real ccxt.pro `create_order_ws` against the local Binance's `/ws-fapi/v1` `order.place`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bot.brokers.ccxt_broker import CcxtBroker
from bot.ccxt.exchange import make_exchange
from bot.config.errors import ConfigError
from bot.config.loader import load_settings
from bot.config.venues import EndpointsConfig, VenueConfig
from bot.sim.localexchange import local_secrets, serve
from bot.sim.localexchange.binance import LocalBinance
from tests.test_live_broker import intent  # the same reduce-only BTCUSDT sell


@asynccontextmanager
async def ws_broker(
    server: LocalBinance, *, timeout_s: float = 10.0, transport: str = "websocket"
) -> AsyncIterator[CcxtBroker]:
    async with serve(server.app) as port:
        cfg = VenueConfig(
            endpoints=EndpointsConfig(
                rest=f"http://127.0.0.1:{port}",
                ws_api=f"ws://127.0.0.1:{port}/ws-fapi/v1",
                allow_insecure=True,
            ),
            request_timeout_s=timeout_s,
            recv_window_ms=500,
            order_transport=transport,  # type: ignore[arg-type]
        )
        exchange = make_exchange("binance", cfg, local_secrets())
        exchange.enableRateLimit = False  # ccxt's client-side weights are not under test here
        broker = CcxtBroker(
            "binance", exchange, accept_window_s=0.6, order_transport=cfg.order_transport
        )
        try:
            yield broker
        finally:
            await broker.close()


def placed(server: LocalBinance) -> list[dict[str, str]]:
    return [p for _t, method, p in server.ws_api_requests if method == "order.place"]


async def test_order_goes_once_over_the_websocket_with_client_id_and_reduce_only() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5, 90_000.0)
    async with ws_broker(server) as broker:
        await broker.portfolio()  # the account read also dials the order socket
        await broker.open_order_socket()  # connected (the same socket: not dialled twice)
        result = await broker.submit(intent(amount=0.2), "lgws1-0")
    assert result.status == "filled" and result.fills[0].amount == 0.2
    assert result.fills[0].price == server.marks["BTCUSDT"]
    assert server.order_requests() == []  # no REST create
    (sent,) = placed(server)
    assert sent["newClientOrderId"] == "lgws1-0" and str(sent["reduceOnly"]).lower() == "true"
    assert sent["symbol"] == "BTCUSDT" and sent["side"] == "SELL"
    assert "signature" in sent and "apiKey" in sent  # signed in its params, as Binance asks
    assert server.orders[0]["reduceOnly"] is True
    assert server.positions["BTCUSDT"].amount == pytest.approx(0.3)


async def test_answer_lost_is_looked_up_by_client_id_not_sent_again() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    server.ws_api_silent_next = 1  # accepted; its answer never comes
    async with ws_broker(server, timeout_s=0.3) as broker:
        await broker.open_order_socket()
        result = await broker.submit(intent(amount=0.1), "lgwst-0")
    assert len(placed(server)) == 1  # one order.place, then a lookup
    assert len(server.orders_with_client_id("lgwst-0")) == 1
    lookups = [r for r in server.log.requests if r[1] == "GET" and r[2] == "/fapi/v1/order"]
    assert lookups and lookups[0][3]["origClientOrderId"] == "lgwst-0"
    assert result.status == "filled"  # what the lookup found
    assert server.positions["BTCUSDT"].amount == pytest.approx(0.4)


async def test_venue_refusal_over_the_websocket_is_a_rejection() -> None:
    server = LocalBinance()  # no position: a reduce-only sell is refused (-2022)
    async with ws_broker(server) as broker:
        await broker.open_order_socket()
        result = await broker.submit(intent(), "lgwsr-0")
    assert result.status == "rejected" and not result.retryable
    assert result.error.startswith("InvalidOrder") and "-2022" in result.error
    assert len(placed(server)) == 1 and server.orders == []


async def test_stops_stay_on_rest_and_rest_is_the_default() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    async with ws_broker(server) as broker:
        stop = await broker.submit(intent(kind="stop", stop_price=80_000.0), "lgwss-0")
    async with ws_broker(server, transport="rest") as broker:
        sold = await broker.submit(intent(amount=0.1), "lgwss-1")
    assert stop.status == "open" and server.orders_with_client_id("lgwss-0")
    assert sold.status == "filled" and len(server.order_requests()) == 2
    assert placed(server) == []
    assert VenueConfig().order_transport == "rest"


async def test_a_socket_not_up_sends_that_order_over_rest_and_redials() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    async with ws_broker(server) as broker:
        first = await broker.submit(intent(amount=0.1), "lgwsd-0")  # never dialled: REST
        await broker.open_order_socket()  # dialled by that first order, now up
        second = await broker.submit(intent(amount=0.1), "lgwsd-1")
    assert first.status == second.status == "filled"
    assert [r[3]["newClientOrderId"] for r in server.order_requests()] == ["lgwsd-0"]
    assert [p["newClientOrderId"] for p in placed(server)] == ["lgwsd-1"]


def test_websocket_transport_is_binance_only() -> None:
    with pytest.raises(ConfigError, match="order_transport"):
        okx = {"okx": {"order_transport": "websocket"}}
        load_settings(overrides={"exchanges": {"venues": okx}})


def test_the_switch_reaches_the_live_broker() -> None:
    from bot.app.live import create_ccxt_broker

    venue = {"order_transport": "websocket", "endpoints": {"ws_api": "wss://example.test/ws"}}
    settings = load_settings(overrides={"exchanges": {"venues": {"binance": venue}}})
    broker = create_ccxt_broker(settings, local_secrets())
    assert broker.order_transport == "websocket"
    assert broker.exchange.urls["api"]["ws"]["ws-api"]["linear"] == "wss://example.test/ws"
