"""Venue parsers on every raw payload of tests/fixtures/payloads, USD checked by hand."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.money import usd_to_cents
from bot.sources.venues import (
    MalformedMessage,
    parse_binance_force_order,
    parse_bybit_liquidation,
    parse_okx_liquidation_orders,
    parse_raw_message,
)

PAYLOADS = Path(__file__).parent / "fixtures" / "payloads"


def _payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


BINANCE = _payload("binance_usdm_forceOrder")["examples"]
BYBIT = _payload("bybit_liquidation")["examples"]
OKX = _payload("okx_liquidation_orders")["examples"]


def cents(usd: str) -> int:
    return usd_to_cents(Decimal(usd))


# --- Binance forceOrder: S is the ORDER side ------------------------------------------------


def test_binance_usdm_buy_order_is_a_short_liquidated_usd_is_filled_times_average() -> None:
    [liq] = parse_binance_force_order(BINANCE[0])
    assert (liq.venue, liq.symbol, liq.side, liq.ts_ms) == (
        "binance-usdm",
        "BTCUSDT",
        "short",
        1698871323059,
    )
    # z * ap = 1.437 * 34959.70 = 34959.70 + 13983.88 + 1293.5089 = 50237.0889
    assert usd_to_cents(liq.notional_usd) == cents("50237.09")
    assert liq.notional_usd == pytest.approx(50237.0889, abs=1e-9)
    assert (liq.price, liq.quantity) == (34959.70, 1.437)


def test_binance_usdm_sell_order_is_a_long_liquidated() -> None:
    [liq] = parse_binance_force_order(BINANCE[2])
    assert liq.side == "long"
    assert liq.notional_usd == pytest.approx(138.74)  # 0.014 * 9910


def test_binance_coinm_delivery_is_inverse_contracts_times_100_usd_for_btc() -> None:
    [liq] = parse_binance_force_order(BINANCE[1])
    assert (liq.venue, liq.symbol, liq.side) == ("binance-coinm", "BTCUSD_200925", "long")
    assert liq.notional_usd == 100.0  # 1 contract of 100 USD, not 1 * 9496.5
    eth = copy.deepcopy(BINANCE[1])
    eth["o"].update(s="ETHUSD_PERP", ps="ETHUSD", z="7", l="7", q="7")
    assert parse_binance_force_order(eth)[0].notional_usd == 70.0  # 7 contracts of 10 USD


def test_binance_falls_back_to_quantity_times_price_without_a_fill() -> None:
    msg = copy.deepcopy(BINANCE[0])
    msg["o"].update(z="0", ap="0")
    [liq] = parse_binance_force_order(msg)
    # q * p = 1.437 * 35100.81 = 50439.86397
    assert liq.notional_usd == pytest.approx(50439.86397, abs=1e-9)


def test_binance_accepts_ccxt_info_and_combined_stream_wrapper() -> None:
    direct = parse_binance_force_order(BINANCE[0])
    assert parse_binance_force_order(BINANCE[0]["o"]) == direct  # ccxt keeps `o` as info
    assert parse_raw_message({"stream": "!forceOrder@arr", "data": BINANCE[0]}) == direct


# --- Bybit: S is the POSITION side -------------------------------------------------------------


def test_bybit_legacy_buy_is_a_long_liquidated() -> None:
    [liq] = parse_bybit_liquidation(BYBIT[0])
    assert (liq.venue, liq.symbol, liq.side, liq.ts_ms) == (
        "bybit",
        "GALAUSDT",
        "long",
        1673251091822,
    )
    assert liq.notional_usd == pytest.approx(62.25511, abs=1e-12)  # 1637 * 0.03803


def test_bybit_all_liquidation_list_sell_is_a_short_liquidated() -> None:
    [liq] = parse_bybit_liquidation(BYBIT[1])
    assert (liq.symbol, liq.side, liq.ts_ms) == ("ROSEUSDT", "short", 1739502302929)
    assert liq.notional_usd == pytest.approx(899.80)  # 20000 * 0.04499


def test_bybit_legacy_sell() -> None:
    [liq] = parse_bybit_liquidation(BYBIT[2])
    assert (liq.symbol, liq.side) == ("BTCUSDT", "short")
    assert liq.notional_usd == pytest.approx(130.5351, abs=1e-12)  # 0.003 * 43511.70


def test_bybit_inverse_size_is_usd_and_bad_entries_do_not_lose_neighbours() -> None:
    msg = copy.deepcopy(BYBIT[1])
    msg["data"] = [
        {"T": 1739502302929, "s": "BTCUSD", "S": "Buy", "v": "2500", "p": "97000.5"},
        {"T": 1739502302930, "s": "ROSEUSDT", "S": "Hold", "v": "1", "p": "1"},
        msg["data"][0],
    ]
    errors: list[str] = []
    out = parse_bybit_liquidation(msg, errors=errors)
    assert [(x.symbol, x.side, x.notional_usd) for x in out] == [
        ("BTCUSD", "long", 2500.0),  # inverse: 2500 contracts of 1 USD
        ("ROSEUSDT", "short", pytest.approx(899.80)),
    ]
    assert errors == [
        "Bybit liquidation data[1]: unknown position side 'Hold' (expected Buy or Sell)"
    ]
    with pytest.raises(MalformedMessage, match=r"data\[1\].*'Hold'"):
        parse_bybit_liquidation(msg)


# --- OKX: every detail, ORDER side, sz in contracts -------------------------------------------


def test_okx_multi_detail_linear_swap_counts_every_detail() -> None:
    out = parse_okx_liquidation_orders(OKX[1])
    assert [(x.symbol, x.side, x.ts_ms) for x in out] == [
        ("BTC-USDT-SWAP", "long", 1700000000100),
        ("BTC-USDT-SWAP", "long", 1700000000200),
    ]
    # sz * ctVal * bkPx: 250 * 0.01 * 60000.1 = 150000.25; 120 * 0.01 * 59990.5 = 71988.60
    assert [usd_to_cents(x.notional_usd) for x in out] == [cents("150000.25"), cents("71988.60")]


def test_okx_inverse_swap_is_contracts_times_usd_face_value() -> None:
    [liq] = parse_okx_liquidation_orders(OKX[2])
    # buy order, posSide net => a short was liquidated; 40 contracts * 100 USD
    assert (liq.symbol, liq.side, liq.notional_usd) == ("BTC-USD-SWAP", "short", 4000.0)


def test_okx_unknown_contract_size_is_rejected_unless_the_markets_know_it() -> None:
    with pytest.raises(MalformedMessage, match="IOST-USDT-SWAP: contract size unknown"):
        parse_okx_liquidation_orders(OKX[0])
    sizes = {"IOST-USDT-SWAP": 1000.0}  # as ccxt markets would say (test value)
    [liq] = parse_okx_liquidation_orders(OKX[0], contract_size=sizes.get)
    assert liq.side == "short"  # buy order, posSide short
    assert liq.notional_usd == pytest.approx(101.803, abs=1e-9)  # 13 * 1000 * 0.007831


def test_okx_contract_size_callable_overrides_the_table() -> None:
    [first, _] = parse_okx_liquidation_orders(OKX[1], contract_size=lambda inst: 0.001)
    assert first.notional_usd == pytest.approx(15000.025)  # 250 * 0.001 * 60000.1


def test_okx_pos_side_contradicting_the_order_side_is_malformed() -> None:
    msg = copy.deepcopy(OKX[1])
    msg["data"][0]["details"][1]["posSide"] = "short"  # a sell order cannot close a short
    errors: list[str] = []
    out = parse_okx_liquidation_orders(msg, errors=errors)
    assert len(out) == 1
    assert errors == [
        "OKX liquidation-orders data[0].details[1]: posSide 'short' contradicts order side 'sell'"
    ]


# --- event ids, detection, malformed input ------------------------------------------------------


def test_event_id_is_stable_across_reparses_and_distinct_per_event() -> None:
    ids = [x.event_id for msg in OKX[1:] for x in parse_raw_message(msg)]
    again = [x.event_id for msg in OKX[1:] for x in parse_raw_message(copy.deepcopy(msg))]
    assert ids == again
    assert len(set(ids)) == len(ids) == 3
    assert all(i and i.startswith("okx:") for i in ids)


def test_parse_raw_message_detects_each_venue_and_ignores_control_frames() -> None:
    venues = [x.venue for msg in BINANCE + BYBIT + OKX[1:] for x in parse_raw_message(msg)]
    assert venues == ["binance-usdm", "binance-coinm", "binance-usdm"] + ["bybit"] * 3 + ["okx"] * 3
    for name in ("bybit_liquidation", "okx_liquidation_orders"):
        assert parse_raw_message(_payload(name)["subscribe_request"]) == []
    ack = {"event": "subscribe", "arg": {"channel": "liquidation-orders", "instType": "SWAP"}}
    assert parse_raw_message(ack) == []
    with pytest.raises(
        MalformedMessage,
        match="not a Binance, Bybit, OKX, Deribit, Gate, dYdX, Bitget, HTX or Hyperliquid",
    ):
        parse_raw_message({"e": "aggTrade", "s": "BTCUSDT"})


def _binance(**fields: Any) -> dict[str, Any]:
    msg = copy.deepcopy(BINANCE[0])
    msg["o"].update(fields)
    return msg


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (_binance(S="HOLD"), "unknown order side 'HOLD'"),
        (_binance(z="0", ap="0", q="-1"), "quantity must be positive"),
        (_binance(z="0", ap="0", p="NaN"), "price is not finite"),
        (_binance(z="0", ap="0", p="abc"), "price is not a number"),
        (_binance(T=1698871323), "outside 2009-01-01..2100-01-01"),
        (_binance(s=""), "symbol"),
        (_binance(s="BTCUSDT", ps="BTCUSD"), "is not a COIN-M symbol"),
        ({"e": "forceOrder", "o": []}, "'o' is not an object"),
        ({"topic": "allLiquidation.X", "data": 5}, "neither a list nor an object"),
        ({"topic": "allLiquidation.X", "data": [{"T": 1739502302929, "s": "X"}]}, "side"),
        ({"arg": {"channel": "liquidation-orders"}, "data": {}}, "'data' is not a list"),
        (
            {"arg": {"channel": "liquidation-orders"}, "data": [{"instId": "BTC-USDT-SWAP"}]},
            "'details' is missing",
        ),
        (
            {"arg": {"channel": "liquidation-orders"}, "data": [{"instId": "BTC-USDT"}]},
            "instType 'SPOT or MARGIN' is not SWAP or FUTURES",
        ),
    ],
)
def test_malformed_messages_raise_with_the_reason(msg: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason.replace("(", r"\(").replace(".", r"\.")):
        parse_raw_message(msg)


def test_infinite_usd_is_rejected() -> None:
    with pytest.raises(MalformedMessage, match="positive finite"):
        parse_raw_message(_binance(z="1e400", ap="1e400"))
