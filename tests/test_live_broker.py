"""The live broker: real ccxt against the local Binance USD-M (signed REST on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import SecretStr

from bot.brokers.ccxt_broker import CcxtBroker
from bot.brokers.client_ids import venue_client_id
from bot.ccxt.exchange import ErrorKind, classify_error, describe_error, make_exchange
from bot.config.venues import EndpointsConfig, VenueConfig
from bot.events import OrderIntent, OrderResult
from bot.secrets import Secrets
from bot.sim.localexchange import local_secrets, serve
from bot.sim.localexchange.binance import LocalBinance
from bot.sim.localexchange.deribit import PUT_ID, PUT_SYMBOL, LocalDeribit, option_market
from tests.live_tools import until


def secrets(key: str = "test-key", secret: str = "test-secret") -> Secrets:
    return local_secrets(key, secret)


@asynccontextmanager
async def local_broker(
    server: LocalBinance,
    *,
    sec: Secrets | None = None,
    timeout_s: float = 10.0,
    recv_window_ms: int = 500,
    **kw: Any,
) -> AsyncIterator[CcxtBroker]:
    async with serve(server.app) as port:
        cfg = VenueConfig(
            endpoints=EndpointsConfig(rest=f"http://127.0.0.1:{port}", allow_insecure=True),
            request_timeout_s=timeout_s,
            recv_window_ms=recv_window_ms,
        )
        exchange = make_exchange("binance", cfg, sec or secrets())
        exchange.enableRateLimit = False  # ccxt's client-side weights are not under test here
        kw.setdefault("accept_window_s", recv_window_ms / 1000 + 0.1)
        broker = CcxtBroker("binance", exchange, **kw)
        try:
            yield broker
        finally:
            await broker.close()


def intent(**kw: Any) -> OrderIntent:
    base: dict[str, Any] = {
        "venue": "binance-usdm",
        "symbol": "BTCUSDT",
        "side": "sell",
        "kind": "market",
        "amount": 0.2,
        "reduce_only": True,
    }
    return OrderIntent(**{**base, **kw})


async def test_portfolio_reduce_only_market_stop_and_cancel() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5, 90_000.0)
    async with local_broker(server) as broker:
        before = await broker.portfolio()
        sold = await broker.submit(intent(amount=0.2), "lg1-0")
        stop = await broker.submit(intent(kind="stop", amount=0.3, stop_price=85_000.0), "lg1-1")
        after = await broker.refresh()
        canceled = await broker.submit(intent(kind="cancel", cancel_client_id="lg1-1"), "lg1-2")
        final = await broker.refresh()
    assert [(p.symbol, p.side, p.size) for p in before.positions] == [("BTCUSDT", "long", 0.5)]
    assert before.positions[0].venue == "binance-usdm"
    assert sold.status == "filled" and sold.fills[0].amount == 0.2
    assert sold.fills[0].price == server.marks["BTCUSDT"]
    assert after.positions[0].size == pytest.approx(0.3)
    assert server.orders[0]["reduceOnly"] is True and server.orders[0]["clientOrderId"] == "lg1-0"
    # the stop went through the algo-order endpoint, reduce-only, with our client id
    algo = server.algo_orders[0]
    assert (algo["clientAlgoId"], algo["orderType"], algo["reduceOnly"]) == (
        "lg1-1",
        "STOP_MARKET",
        True,
    )
    assert float(algo["triggerPrice"]) == 85_000.0
    assert stop.status == "open"
    assert [(o.client_id, o.kind, o.stop_price) for o in after.open_orders] == [
        ("lg1-1", "stop", 85_000.0)
    ]
    assert canceled.status == "canceled" and algo["algoStatus"] == "CANCELED"
    assert final.open_orders == ()


def _account_reads(server: LocalBinance) -> int:
    return sum(1 for _t, _m, path, _p in server.log.requests if path.endswith("/positionRisk"))


async def test_the_next_plan_after_a_reduction_has_its_fill_without_waiting_for_a_read() -> None:
    # reduce_exposure then hedge (the default level 2): the hedge plans on the position the
    # reduction left, without the ~0.25 s re-read (and rate limit) between the two actions
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5, 90_000.0)
    server.set_position("ETHUSDT", 2.0, 3_000.0)
    async with local_broker(server, refresh_delay_s=0.05) as broker:
        await broker.portfolio()
        await broker.submit(intent(amount=0.2), "lg1-0")
        await broker.submit(intent(symbol="ETHUSDT", amount=2.0), "lg1-1")
        reads = _account_reads(server)
        planned_on = await broker.portfolio()
        assert _account_reads(server) == reads  # nothing read between the actions
        # the venue is read after the orders all the same, and holds what was planned on
        await until(lambda: _account_reads(server) > reads)
        read = await broker.refresh()
    assert [(p.symbol, p.side) for p in planned_on.positions] == [("BTCUSDT", "long")]
    assert planned_on.positions[0].size == pytest.approx(0.3)
    assert [(p.symbol, p.size) for p in read.positions] == [("BTCUSDT", pytest.approx(0.3))]


async def test_a_plan_waits_for_an_order_on_its_way_and_sizes_on_what_it_left() -> None:
    # the default level 2 plans its hedge a few loop turns after its reduction went out; the
    # hedge must size on the position the reduction left, as paper mode (which fills at once)
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5, 90_000.0)
    server.slow_next_orders = [0.2]  # the reduction's round trip
    async with local_broker(server, refresh_delay_s=30.0) as broker:
        await broker.portfolio()
        selling = asyncio.create_task(broker.submit(intent(amount=0.2), "lg1-0"))
        await asyncio.sleep(0)  # on its way: sent, not answered
        planned_on = await broker.portfolio()
        answered = selling.done()
        await selling
    assert answered
    assert planned_on.positions[0].size == pytest.approx(0.3)


async def test_a_read_from_inside_an_orders_own_handling_does_not_wait_for_that_order() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5, 90_000.0)
    server.fail_next_orders_with = [-2019]
    brokers: list[CcxtBroker] = []
    read_inside: list[float] = []

    async def on_rejected(_i: OrderIntent, _r: OrderResult) -> None:  # still inside submit
        read_inside.append((await brokers[0].portfolio()).positions[0].size)

    async with local_broker(server, on_rejected=on_rejected) as broker:
        brokers.append(broker)
        await broker.portfolio()
        refused = await asyncio.wait_for(broker.submit(intent(amount=0.2), "lg1-0"), 10.0)
    assert refused.status == "rejected" and read_inside == [0.5]


async def test_the_next_plan_reads_the_venue_after_an_order_that_is_not_a_plain_reduction() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5, 90_000.0)
    async with local_broker(server, refresh_delay_s=30.0) as broker:
        await broker.portfolio()
        await broker.submit(intent(kind="stop", amount=0.3, stop_price=85_000.0), "lg1-0")
        reads = _account_reads(server)
        after_stop = await broker.portfolio()  # a resting order: what rests only the venue says
        assert _account_reads(server) == reads + 1
        # an order answered while the account was being read: that read may lack it
        reading = asyncio.create_task(broker.refresh())
        await broker.submit(intent(amount=0.2), "lg1-1")
        await reading
        reads = _account_reads(server)
        after_race = await broker.portfolio()
        assert _account_reads(server) == reads + 1
    assert [o.client_id for o in after_stop.open_orders] == ["lg1-0"]
    assert after_race.positions[0].size == pytest.approx(0.3)


async def test_an_instrument_the_policy_trades_unheld_is_priced_at_each_read() -> None:
    server = LocalBinance()
    server.set_position("ETHUSDT", 2.0, 3_000.0)
    async with local_broker(server, price_symbols=("BTCUSDT", "NOPEUSDT")) as broker:
        book = await broker.portfolio()
    assert [p.symbol for p in book.positions] == ["ETHUSDT"]
    # the venue's mark for the unheld perp; a symbol the venue lacks stays unpriced
    assert book.prices == {"ETHUSDT": server.marks["ETHUSDT"], "BTCUSDT": server.marks["BTCUSDT"]}


async def test_create_timed_out_after_acceptance_is_not_placed_twice() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    server.delay_next_orders = [1.0]  # accepted at once, answered after the client gave up
    async with local_broker(server, timeout_s=0.3) as broker:
        result = await broker.submit(intent(amount=0.1), "lgtimeout-0")
    assert len(server.orders_with_client_id("lgtimeout-0")) == 1
    assert len(server.order_requests()) == 1  # looked up, not re-sent
    assert result.status == "filled"  # what the lookup found
    assert server.positions["BTCUSDT"].amount == pytest.approx(0.4)


async def test_create_not_accepted_is_retried_once_absent() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    server.http_errors["/fapi/v1/order"] = [503]  # refused before any effect
    async with local_broker(server) as broker:
        result = await broker.submit(intent(amount=0.1), "lgretry-0")
    assert result.status == "filled"
    assert len(server.orders_with_client_id("lgretry-0")) == 1
    lookups = [r for r in server.log.requests if r[1] == "GET" and r[2] == "/fapi/v1/order"]
    # looked up at once, and again once the lost request's recvWindow had passed
    assert len(lookups) == 2 and lookups[0][3]["origClientOrderId"] == "lgretry-0"
    assert server.order_requests()[0][3]["recvWindow"] == "500"


async def test_stop_timeout_is_looked_up_as_a_trigger_order() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    server.http_errors["/fapi/v1/algoOrder"] = [504]
    async with local_broker(server) as broker:
        result = await broker.submit(intent(kind="stop", stop_price=80_000.0), "lgstop-0")
    lookups = [r for r in server.log.requests if r[1] == "GET" and r[2] == "/fapi/v1/algoOrder"]
    assert lookups and lookups[0][3]["clientAlgoId"] == "lgstop-0"
    assert result.status == "open"
    assert len(server.orders_with_client_id("lgstop-0")) == 1


@pytest.mark.parametrize(
    ("sec", "code"),
    [(secrets("wrong-key"), -2015), (secrets(secret="wrong-secret"), -1022)],
)
async def test_auth_errors_are_permanent_and_reported(sec: Secrets, code: int) -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    reported: list[OrderResult] = []

    async def on_rejected(_i: OrderIntent, result: OrderResult) -> None:
        reported.append(result)

    async with local_broker(server, sec=sec, on_rejected=on_rejected) as broker:
        result = await broker.submit(intent(), "lgauth-0")
    assert result.status == "rejected" and not result.retryable
    assert "AuthenticationError" in result.error and str(code) in result.error
    assert reported == [result]
    assert server.orders == [] and len(server.order_requests()) == 1


async def test_insufficient_margin_is_permanent() -> None:
    server = LocalBinance()
    server.balance_usdt = 100.0
    async with local_broker(server) as broker:
        result = await broker.submit(intent(side="buy", reduce_only=False, amount=1.0), "lgm-0")
    assert result.status == "rejected" and not result.retryable
    assert result.error.startswith("InsufficientFunds")  # -2019, with the futures error table
    assert len(server.order_requests()) == 1


async def test_reduce_only_without_position_is_refused_by_the_venue() -> None:
    server = LocalBinance()
    async with local_broker(server) as broker:
        result = await broker.submit(intent(), "lgro-0")
    assert result.status == "rejected" and result.error.startswith("InvalidOrder")


async def test_reads_retry_transient_errors_only() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    server.http_errors["/fapi/v3/positionRisk"] = [503, 502]
    async with local_broker(server) as broker:
        portfolio = await broker.refresh()
    assert portfolio.positions[0].size == 0.5
    risk_reads = [r for r in server.log.requests if r[2] == "/fapi/v3/positionRisk"]
    assert len(risk_reads) == 3


async def test_restart_reconciles_open_positions_and_orders() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    server.set_position("ETHUSDT", -2.0)
    async with local_broker(server) as first:
        await first.submit(intent(kind="stop", amount=0.5, stop_price=80_000.0), "lgr-0")
        await first.submit(intent(amount=0.1), "lgr-1")
    # a new process: the journal says lgr-1 and lgr-2 were sent, with no outcome recorded
    async with local_broker(server) as second:
        rec = await second.reconcile([("lgr-1", intent(amount=0.1)), ("lgr-2", intent())])
    assert set(rec.found) == {"lgr-1"} and rec.found["lgr-1"].status == "filled"
    assert rec.missing == ["lgr-2"]
    assert sorted((p.symbol, p.side) for p in rec.positions) == [
        ("BTCUSDT", "long"),
        ("ETHUSDT", "short"),
    ]
    assert [o.client_id for o in rec.open_orders] == ["lgr-0"]


def test_client_ids_fit_each_venue_deterministically() -> None:
    cid = "lg0123456789abcd-12"
    assert venue_client_id(cid, "binance") == cid
    assert venue_client_id(cid, "okx").isalnum() and len(venue_client_id(cid, "okx")) <= 32
    long_id = "a-very-long-action-identifier-from-a-plugin-0"
    for venue, limit in (("bybit", 36), ("binance", 36), ("okx", 32)):
        out = venue_client_id(long_id, venue)
        assert len(out) <= limit and out == venue_client_id(long_id, venue)
        assert out != venue_client_id(long_id[:-1] + "1", venue)  # the hash keeps them apart
    assert venue_client_id("a b", "bybit") != venue_client_id("ab", "bybit")


def test_error_mapping_in_one_place() -> None:
    import ccxt

    assert classify_error(ccxt.RequestTimeout("t")) is ErrorKind.RETRYABLE
    assert classify_error(ccxt.ExchangeNotAvailable("x")) is ErrorKind.RETRYABLE
    assert classify_error(ccxt.InsufficientFunds("x")) is ErrorKind.REJECTED
    assert classify_error(ccxt.AuthenticationError("x")) is ErrorKind.REJECTED
    assert classify_error(ValueError("x")) is ErrorKind.UNKNOWN


@asynccontextmanager
async def with_puts(
    binance: LocalBinance, deribit: LocalDeribit, timeout_s: float = 10.0
) -> AsyncIterator[CcxtBroker]:
    async with serve(binance.app) as bport, serve(deribit.app) as dport:
        bcfg = VenueConfig(
            endpoints=EndpointsConfig(rest=f"http://127.0.0.1:{bport}", allow_insecure=True)
        )
        dcfg = VenueConfig(
            endpoints=EndpointsConfig(rest=f"http://127.0.0.1:{dport}", allow_insecure=True),
            request_timeout_s=timeout_s,
        )
        sec = local_secrets()
        sec = sec.model_copy(
            update={
                "deribit_api_key": SecretStr("deri-key"),
                "deribit_api_secret": SecretStr("deri-secret"),
            }
        )
        ex = make_exchange("binance", bcfg, sec)
        dex = make_exchange("deribit", dcfg, sec, markets=[option_market()])
        broker = CcxtBroker("binance", ex, options_venue="deribit", options_exchange=dex)
        try:
            yield broker
        finally:
            await broker.close()


def put(**kw: Any) -> OrderIntent:
    base: dict[str, Any] = {
        "venue": "deribit",
        "symbol": PUT_SYMBOL,
        "side": "buy",
        "kind": "limit",
        "amount": 0.5,
        "reduce_only": False,
        "price": 1_140.0,  # USD per contract, as the hedge strategy prices it
        "instrument": "option",
    }
    return OrderIntent(**{**base, **kw})


async def test_puts_on_deribit_priced_in_btc_labelled_with_the_client_id() -> None:
    binance, deribit = LocalBinance(), LocalDeribit()
    async with with_puts(binance, deribit) as broker:
        result = await broker.submit(put(), "lgput-0")
        found = await broker.lookup("lgput-0", put())
    assert result.status == "open" and found is not None and found.status == "open"
    (order,) = deribit.orders
    assert order["instrument_name"] == "BTC-27DEC24-90000-P" and order["label"] == "lgput-0"
    assert order["amount"] == 0.5 and order["order_type"] == "limit"
    # USD premium / BTC mark, in Deribit's 0.0005 BTC steps
    assert order["price"] == pytest.approx(1_140.0 / binance.marks["BTCUSDT"], abs=0.0005)


async def test_put_timed_out_after_acceptance_is_found_by_label() -> None:
    binance, deribit = LocalBinance(), LocalDeribit()
    deribit.delay_next_orders = [1.0]
    async with with_puts(binance, deribit, timeout_s=0.3) as broker:
        result = await broker.submit(put(), "lgput-1")
    assert len(deribit.orders) == 1  # not bought twice
    assert [path for path, _ in deribit.requests].count("/api/v2/private/buy") == 1
    assert result.status == "open"


async def test_ioc_cap_uses_a_fresh_mark_and_an_unfilled_ioc_is_a_failure() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 1.0)
    async with local_broker(server, slippage_cap_bps=10.0, price_max_age_s=60.0) as broker:
        await broker.refresh()  # notes the mark it read: 95,000
        server.marks["BTCUSDT"] = 90_000.0  # the price falls
        stale = await broker.submit(intent(amount=0.1), "lgioc-0")  # capped at 95,000 - 10 bp
        broker.price_max_age_s = 0.0  # marks older than that are read again
        fresh = await broker.submit(intent(amount=0.1), "lgioc-1")
    assert stale.status == "failed" and stale.fills == () and "0 of 0.1" in stale.error
    assert float(server.orders[0]["price"]) == pytest.approx(95_000 * (1 - 0.001), abs=0.1)
    assert server.orders[0]["timeInForce"] == "IOC" and server.orders[0]["status"] == "EXPIRED"
    assert fresh.status == "filled" and fresh.fills[0].amount == pytest.approx(0.1)
    assert float(server.orders[1]["price"]) == pytest.approx(90_000 * (1 - 0.001), abs=0.1)


async def test_intents_for_another_venue_are_refused_with_the_reason() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    async with local_broker(server) as broker:
        bybit = await broker.submit(intent(venue="bybit", reduce_only=False), "lgv-0")
        alias = await broker.submit(intent(venue="binance", amount=0.1), "lgv-1")
    assert bybit.status == "rejected" and "'bybit'" in bybit.error and "binance-usdm" in bybit.error
    assert alias.status == "filled"  # binance and binance-usdm are one venue
    assert [r[3]["newClientOrderId"] for r in server.order_requests()] == ["lgv-1"]


async def test_error_text_carries_no_signed_query_string() -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = VenueConfig(
        endpoints=EndpointsConfig(rest=f"http://user:pw@127.0.0.1:{port}", allow_insecure=True),
        request_timeout_s=1.0,
    )
    ex = make_exchange("binance", cfg, secrets(), [])
    try:
        with pytest.raises(Exception) as caught:
            await ex.fapiPrivateGetOrder({"symbol": "BTCUSDT", "origClientOrderId": "lg1-0"})
    finally:
        await ex.close()
    raw = str(caught.value)
    text = describe_error(caught.value)
    assert "signature=" in raw  # ccxt's own message carries the signed URL
    assert "signature=" not in text and "timestamp=" not in text and "pw@" not in text
    # The one scrubber drops whole URLs (keys may sit in a path too); the call stays named.
    assert "binanceusdm GET <url>" in text and f"127.0.0.1:{port}" not in text


async def test_puts_held_and_resting_on_the_options_venue_are_in_the_portfolio() -> None:
    binance, deribit = LocalBinance(), LocalDeribit()
    deribit.positions[PUT_ID] = 2.0
    async with with_puts(binance, deribit) as broker:
        await broker.submit(put(), "lgput-2")
        book = await broker.refresh()
        sold = await broker.submit(
            put(side="sell", kind="market", price=None, amount=1.0, reduce_only=True), "lgput-3"
        )
        canceled = await broker.submit(put(kind="cancel", cancel_client_id="lgput-2"), "lgput-4")
    held = [(p.venue, p.symbol, p.side, p.size, p.instrument) for p in book.positions]
    assert held == [("deribit", PUT_SYMBOL, "long", 2.0, "option")]
    resting = [(o.venue, o.symbol, o.client_id, o.amount) for o in book.open_orders]
    assert resting == [("deribit", PUT_SYMBOL, "lgput-2", 0.5)]
    assert sold.status == "open" and deribit.orders[1]["direction"] == "sell"
    assert deribit.orders[1]["reduce_only"] is True and deribit.orders[1]["amount"] == 1.0
    assert canceled.status == "canceled" and deribit.orders[0]["order_state"] == "cancelled"
