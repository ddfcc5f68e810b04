"""The live broker's creates that get no answer: found when they landed, never doubled.

Real ccxt against the local Binance USD-M, which enforces recvWindow: a request it takes
after `timestamp + recvWindow` is refused (-1021), as Binance does.
"""

from __future__ import annotations

import pytest

from bot.sim.localexchange.binance import LocalBinance
from tests.test_live_broker import intent, local_broker


async def test_create_landing_after_the_timeout_is_found_not_sent_twice() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    server.slow_next_orders = [0.6]  # still in flight when the client gives up at 0.3 s
    async with local_broker(server, timeout_s=0.3, recv_window_ms=1_000) as broker:
        result = await broker.submit(intent(amount=0.1), "lglate-0")
    assert len(server.order_requests()) == 1  # not re-sent: it landed late, inside recvWindow
    assert len(server.orders_with_client_id("lglate-0")) == 1
    assert result.status == "filled"
    assert server.positions["BTCUSDT"].amount == pytest.approx(0.4)


async def test_reduce_only_create_that_never_lands_is_sent_again_after_the_window() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    server.slow_next_orders = [0.8]  # arrives after recvWindow: the venue refuses it (-1021)
    async with local_broker(server, timeout_s=0.3, recv_window_ms=500) as broker:
        result = await broker.submit(intent(amount=0.1), "lgnever-0")
    assert len(server.order_requests()) == 2 and result.status == "filled"
    assert len(server.orders_with_client_id("lgnever-0")) == 1


async def test_reduce_only_create_lost_every_time_is_reported_not_placed() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    server.slow_next_orders = [0.8, 0.8]  # both arrive after recvWindow: refused (-1021)
    async with local_broker(server, timeout_s=0.3, recv_window_ms=500) as broker:
        result = await broker.submit(intent(amount=0.1), "lglost-0")
    assert len(server.order_requests()) == 2 and server.orders == []
    assert result.status == "failed" and result.retryable
    assert result.error.startswith("not placed after 2 attempts")
    assert not result.outcome_unknown  # certainly absent: not a case for a person


async def test_hedge_with_unknown_outcome_is_never_resent() -> None:
    server = LocalBinance()
    server.http_errors["/fapi/v1/order"] = [503]  # no answer to the create
    hedge = intent(side="sell", reduce_only=False, amount=0.1)
    async with local_broker(server) as broker:
        result = await broker.submit(hedge, "lghedge-0")
    assert result.status == "failed" and result.error.startswith("outcome unknown")
    assert result.outcome_unknown
    assert "decide" in result.error
    assert len(server.order_requests()) == 1


async def test_lookup_failure_after_a_timeout_is_unknown_not_rejected() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    server.http_errors["/fapi/v1/order"] = [503, 503]  # the create, then the lookup
    async with local_broker(server, read_attempts=1) as broker:
        result = await broker.submit(intent(amount=0.1), "lgunk-0")
    assert result.status == "failed" and "lookup failed" in result.error
    assert result.outcome_unknown and result.error.startswith("outcome unknown: create")
    assert not result.retryable and len(server.order_requests()) == 1


async def test_reconcile_reports_a_failing_lookup_instead_of_crashing() -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.5)
    server.http_errors["/fapi/v1/order"] = [503]
    async with local_broker(server, read_attempts=1) as broker:
        rec = await broker.reconcile([("lgrec-0", intent(amount=0.1))])
    assert list(rec.unknown) == ["lgrec-0"] and "ExchangeNotAvailable" in rec.unknown["lgrec-0"]
    assert rec.found == {} and rec.missing == [] and len(rec.positions) == 1
