"""Venue liquidation messages -> Liquidation events: the code recorded files and live streams share.

Contents: parse_binance_force_order, parse_bybit_liquidation, parse_okx_liquidation_orders,
parse_deribit_trades, parse_gate_liquidates, parse_dydx_trades, parse_bitget_liquidation,
parse_htx_liquidation_orders, parse_hyperliquid_fills (a node's fills file),
parse_hyperliquid_user_fills (the fund's own accounts: `userFills`),
parse_raw_message (detects the venue), the contract-size tables, event ids.

Each parser takes the whole websocket message or the single entry ccxt keeps as `info`.
With `errors=None` the first bad entry raises MalformedMessage; with a list, bad entries are
skipped and their reasons appended, so one odd entry does not lose its neighbours.

Side conventions (docs/venues.md): Binance `S` and OKX `side` are the liquidation ORDER side
(SELL = a long was liquidated); Bybit `S`/`side` is the POSITION side (Buy = a long was).
USD is always computed here, never taken from ccxt:
- Binance USD-M: filled qty `z` * average price `ap` (fallback `q` * `p`).
- Binance COIN-M (`BTCUSD_PERP`, `BTCUSD_200925`): contracts * face value, 100 USD for BTC and
  10 USD for every other coin (Binance COIN-M contract specifications); venue `binance-coinm`.
- Bybit linear: `v` * `p`; inverse (`BTCUSD`, `BTCUSDH25`): `v` contracts of 1 USD each.
- OKX SWAP/FUTURES: `sz` contracts; linear USD = sz * ctVal * bkPx, inverse (`BTC-USD-SWAP`)
  USD = sz * ctVal (ctVal in USD). ctVal comes from `contract_size(instId)` (ccxt markets) or
  the small built-in table; an unknown instrument is rejected, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.events import Liquidation
from bot.sources.validate import MalformedMessage, make_liquidation, to_number, to_ts_ms

__all__ = [
    "OKX_CONTRACT_VALUES",
    "MalformedMessage",
    "binance_coinm_contract_usd",
    "parse_binance_force_order",
    "parse_bitget_liquidation",
    "parse_bybit_liquidation",
    "parse_deribit_trades",
    "parse_dydx_trades",
    "parse_gate_liquidates",
    "parse_htx_liquidation_orders",
    "parse_hyperliquid_fills",
    "parse_hyperliquid_user_fills",
    "parse_okx_liquidation_orders",
    "parse_raw_message",
]

ContractSize = Callable[[str], float | None]

# OKX ctVal by instrument family (swaps and futures share it): base units for linear, USD for
# inverse. From OKX /api/v5/public/instruments; pass `contract_size` for anything else.
OKX_CONTRACT_VALUES: dict[str, Decimal] = {
    "BTC-USDT": Decimal("0.01"),
    "ETH-USDT": Decimal("0.1"),
    "SOL-USDT": Decimal("1"),
    "ADA-USDT": Decimal("100"),
    "BTC-USD": Decimal("100"),
    "ETH-USD": Decimal("10"),
}

_BINANCE_COINM = re.compile(r"^([A-Z0-9]+)USD_(PERP|\d{6})$")
_BYBIT_INVERSE = re.compile(r"^[A-Z0-9]+USD([FGHJKMNQUVXZ]\d{2})?$")


def _entry_error(errors: list[str] | None, where: str, exc: MalformedMessage) -> None:
    if errors is None:
        raise MalformedMessage(f"{where}: {exc}") from None
    errors.append(f"{where}: {exc}")


def _event_id(venue: str, symbol: str, ts_ms: int, side: str, qty: str, price: str) -> str:
    # Fields as the venue sent them, so a message re-sent after a reconnect gets the same id.
    return f"{venue}:{symbol}:{ts_ms}:{side}:{qty}:{price}"


def _text(entry: Mapping[str, Any], key: str, what: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedMessage(f"{what} ({key!r}) is missing or not text")
    return value.strip()


def _positive(value: object, what: str) -> Decimal:
    number = to_number(value, what)
    if number <= 0:
        raise MalformedMessage(f"{what} must be positive, not {number}")
    return number


# ---------------------------------------------------------------------------------------------
# Binance forceOrder
# ---------------------------------------------------------------------------------------------


def binance_coinm_contract_usd(symbol: str) -> Decimal | None:
    """Face value in USD of one Binance COIN-M contract, or None if `symbol` is not COIN-M."""
    match = _BINANCE_COINM.match(symbol)
    if match is None:
        return None
    return Decimal(100) if match.group(1) == "BTC" else Decimal(10)


def parse_binance_force_order(
    msg: Mapping[str, Any], errors: list[str] | None = None
) -> list[Liquidation]:
    """A Binance `forceOrder` event (or its `o` object, or a combined-stream wrapper)."""
    if not isinstance(msg, Mapping):
        raise MalformedMessage("a Binance forceOrder message must be a JSON object")
    if isinstance(msg.get("data"), Mapping) and "stream" in msg:
        msg = msg["data"]
    order = msg.get("o")
    if not isinstance(order, Mapping):
        if "s" not in msg or "e" in msg:
            raise MalformedMessage("Binance forceOrder: 'o' is not an object")
        order = msg  # ccxt's info: the order object itself (its "o" is the order type)
    try:
        return [_binance_order(order, msg.get("E"))]
    except MalformedMessage as exc:
        _entry_error(errors, "Binance forceOrder", exc)
        return []


def _binance_order(o: Mapping[str, Any], event_ms: object) -> Liquidation:
    symbol = _text(o, "s", "symbol")
    order_side = _text(o, "S", "order side").upper()
    if order_side not in ("BUY", "SELL"):
        raise MalformedMessage(f"unknown order side {order_side[:20]!r} (expected BUY or SELL)")
    side = "long" if order_side == "SELL" else "short"
    ts_ms = to_ts_ms(o.get("T", event_ms), "trade time 'T'")
    filled = o.get("z")
    avg = o.get("ap")
    use_fill = _is_positive_text(filled) and _is_positive_text(avg)
    qty = _positive(filled if use_fill else o.get("q"), "quantity")
    price = _positive(avg if use_fill else o.get("p"), "price")
    coinm_usd = binance_coinm_contract_usd(symbol)
    if coinm_usd is not None:
        venue, usd = "binance-coinm", qty * coinm_usd
    elif "ps" in o:
        raise MalformedMessage(f"symbol {symbol!r} has 'ps' but is not a COIN-M symbol")
    else:
        venue, usd = "binance-usdm", qty * price
    return make_liquidation(
        ts_ms=ts_ms,
        venue=venue,
        symbol=symbol,
        side=side,
        notional_usd=usd,
        price=price,
        quantity=qty,
        event_id=_event_id(venue, symbol, ts_ms, side, str(qty), str(price)),
    )


def _is_positive_text(value: object) -> bool:
    try:
        return to_number(value, "") > 0
    except MalformedMessage:
        return False


# ---------------------------------------------------------------------------------------------
# Bybit allLiquidation / liquidation
# ---------------------------------------------------------------------------------------------


def parse_bybit_liquidation(
    msg: Mapping[str, Any], errors: list[str] | None = None
) -> list[Liquidation]:
    """Bybit `allLiquidation.<SYM>` (data list) or legacy `liquidation.<SYM>` (data object)."""
    if not isinstance(msg, Mapping):
        raise MalformedMessage("a Bybit liquidation message must be a JSON object")
    data = msg.get("data", msg)
    entries = [data] if isinstance(data, Mapping) else data
    if not isinstance(entries, list):
        raise MalformedMessage("Bybit liquidation: 'data' is neither a list nor an object")
    out: list[Liquidation] = []
    for i, entry in enumerate(entries):
        try:
            if not isinstance(entry, Mapping):
                raise MalformedMessage("entry is not an object")
            out.append(_bybit_entry(entry))
        except MalformedMessage as exc:
            _entry_error(errors, f"Bybit liquidation data[{i}]", exc)
    return out


def _bybit_entry(e: Mapping[str, Any]) -> Liquidation:
    if "s" in e or "T" in e:  # allLiquidation
        symbol, pos_side = _text(e, "s", "symbol"), _text(e, "S", "position side")
        ts_ms = to_ts_ms(e.get("T"), "time 'T'")
        size, price = _positive(e.get("v"), "size 'v'"), _positive(e.get("p"), "price 'p'")
    else:  # legacy liquidation.<SYM>
        symbol, pos_side = _text(e, "symbol", "symbol"), _text(e, "side", "position side")
        ts_ms = to_ts_ms(e.get("updatedTime"), "time 'updatedTime'")
        size, price = _positive(e.get("size"), "size"), _positive(e.get("price"), "price")
    if pos_side not in ("Buy", "Sell"):
        raise MalformedMessage(f"unknown position side {pos_side[:20]!r} (expected Buy or Sell)")
    side = "long" if pos_side == "Buy" else "short"
    usd = size if _BYBIT_INVERSE.match(symbol) else size * price
    return make_liquidation(
        ts_ms=ts_ms,
        venue="bybit",
        symbol=symbol,
        side=side,
        notional_usd=usd,
        price=price,
        quantity=size,
        event_id=_event_id("bybit", symbol, ts_ms, side, str(size), str(price)),
    )


# ---------------------------------------------------------------------------------------------
# OKX liquidation-orders
# ---------------------------------------------------------------------------------------------


def parse_okx_liquidation_orders(
    msg: Mapping[str, Any],
    contract_size: ContractSize | None = None,
    errors: list[str] | None = None,
) -> list[Liquidation]:
    """OKX `liquidation-orders`: every entry of every `details` list (ccxt keeps only the first)."""
    if not isinstance(msg, Mapping):
        raise MalformedMessage("an OKX liquidation-orders message must be a JSON object")
    data = msg.get("data", [msg])
    if not isinstance(data, list):
        raise MalformedMessage("OKX liquidation-orders: 'data' is not a list")
    out: list[Liquidation] = []
    for i, inst in enumerate(data):
        where = f"OKX liquidation-orders data[{i}]"
        try:
            if not isinstance(inst, Mapping):
                raise MalformedMessage("entry is not an object")
            inst_id = _text(inst, "instId", "instrument")
            inst_type = str(inst.get("instType") or _okx_type(inst_id))
            if inst_type not in ("SWAP", "FUTURES"):
                raise MalformedMessage(f"{inst_id}: instType {inst_type!r} is not SWAP or FUTURES")
            ct_val = _okx_contract_value(inst_id, inst.get("instFamily"), contract_size)
            details = inst.get("details")
            if not isinstance(details, list) or not details:
                raise MalformedMessage(f"{inst_id}: 'details' is missing or empty")
        except MalformedMessage as exc:
            _entry_error(errors, where, exc)
            continue
        inverse = inst_id.split("-")[1] == "USD"
        for j, detail in enumerate(details):
            try:
                if not isinstance(detail, Mapping):
                    raise MalformedMessage("detail is not an object")
                out.append(_okx_detail(inst_id, detail, ct_val, inverse))
            except MalformedMessage as exc:
                _entry_error(errors, f"{where}.details[{j}]", exc)
    return out


def _okx_type(inst_id: str) -> str:
    if inst_id.endswith("-SWAP"):
        return "SWAP"
    return "FUTURES" if re.search(r"-\d{6}$", inst_id) else "SPOT or MARGIN"


def _okx_contract_value(
    inst_id: str, family: object, contract_size: ContractSize | None
) -> Decimal:
    if contract_size is not None:
        value = contract_size(inst_id)
        if value is not None:
            return _positive(value, f"{inst_id} contract size")
    parts = inst_id.split("-")
    key = family if isinstance(family, str) and family else "-".join(parts[:2])
    if key in OKX_CONTRACT_VALUES:
        return OKX_CONTRACT_VALUES[key]
    raise MalformedMessage(
        f"{inst_id}: contract size unknown (not in the built-in table; load the OKX markets)"
    )


def _okx_detail(inst_id: str, d: Mapping[str, Any], ct_val: Decimal, inverse: bool) -> Liquidation:
    order_side = _text(d, "side", "order side").lower()
    if order_side not in ("buy", "sell"):
        raise MalformedMessage(f"unknown order side {order_side[:20]!r} (expected buy or sell)")
    side = "long" if order_side == "sell" else "short"
    pos_side = str(d.get("posSide") or "net").lower()
    if pos_side in ("long", "short") and pos_side != side:
        raise MalformedMessage(f"posSide {pos_side!r} contradicts order side {order_side!r}")
    ts_ms = to_ts_ms(d.get("ts"), "time 'ts'")
    contracts = _positive(d.get("sz"), "size 'sz'")
    price = _positive(d.get("bkPx"), "bankruptcy price 'bkPx'")
    usd = contracts * ct_val if inverse else contracts * ct_val * price
    return make_liquidation(
        ts_ms=ts_ms,
        venue="okx",
        symbol=inst_id,
        side=side,
        notional_usd=usd,
        price=price,
        quantity=contracts,
        event_id=_event_id("okx", inst_id, ts_ms, side, str(contracts), str(price)),
    )


# ---------------------------------------------------------------------------------------------
# Deribit trades.* (a trade's `liquidation` field)
# ---------------------------------------------------------------------------------------------
# Layout: docs.deribit.com, subscriptions `trades.{instrument_name}.{interval}` and
# `trades.{kind}.{currency}.{interval}`: params.data is a list of trades with `timestamp`,
# `instrument_name`, `direction` (the TAKER's side), `price`, `amount` (USD for perpetuals and
# inverse futures, base coin for linear `_USDC` ones and options), `trade_id`, and, on a
# liquidation, `liquidation`: "M" (the maker was liquidated), "T" (the taker) or "MT" (both).


def parse_deribit_trades(
    msg: Mapping[str, Any], errors: list[str] | None = None
) -> list[Liquidation]:
    """Deribit `trades.*` notification: one Liquidation per liquidated side of a trade."""
    if not isinstance(msg, Mapping):
        raise MalformedMessage("a Deribit notification must be a JSON object")
    params = msg.get("params", msg)
    data = params.get("data") if isinstance(params, Mapping) else None
    if not isinstance(data, list):
        raise MalformedMessage("Deribit trades: 'params.data' is not a list")
    out: list[Liquidation] = []
    for i, trade in enumerate(data):
        try:
            if not isinstance(trade, Mapping):
                raise MalformedMessage("trade is not an object")
            out.extend(_deribit_trade(trade))
        except MalformedMessage as exc:
            _entry_error(errors, f"Deribit trades data[{i}]", exc)
    return out


def _deribit_trade(t: Mapping[str, Any]) -> list[Liquidation]:
    marker = t.get("liquidation")
    if marker in (None, "", "none"):
        return []  # an ordinary trade
    if marker not in ("M", "T", "MT"):
        raise MalformedMessage(f"unknown liquidation marker {str(marker)[:10]!r} (M, T or MT)")
    name = _text(t, "instrument_name", "instrument")
    if _DERIBIT_OPTION.match(name):
        raise MalformedMessage(f"{name}: an option; only futures liquidations are counted")
    direction = _text(t, "direction", "taker direction").lower()
    if direction not in ("buy", "sell"):
        raise MalformedMessage(f"unknown direction {direction[:20]!r} (expected buy or sell)")
    ts_ms = to_ts_ms(t.get("timestamp"), "time 'timestamp'")
    amount = _positive(t.get("amount"), "amount")
    price = _positive(t.get("price"), "price")
    linear = "_" in name.split("-")[0]  # BTC_USDC-PERPETUAL: amount in coin
    usd = amount * price if linear else amount
    qty = amount if linear else amount / price
    taker_side = "long" if direction == "sell" else "short"  # a forced sell closes a long
    sides = {"T": [taker_side], "M": [_other(taker_side)], "MT": [taker_side, _other(taker_side)]}
    trade_id = str(t.get("trade_id") or f"{ts_ms}:{amount}:{price}")
    return [
        make_liquidation(
            ts_ms=ts_ms,
            venue="deribit",
            symbol=name,
            side=side,
            notional_usd=usd,
            price=price,
            quantity=qty,
            event_id=f"deribit:{name}:{trade_id}:{side}",
        )
        for side in sides[str(marker)]
    ]


_DERIBIT_OPTION = re.compile(r"^[A-Z_]+-\d+[A-Z]{3}\d{2}-[\d.d]+-[CP]$")


def _other(side: str) -> str:
    return "short" if side == "long" else "long"


# ---------------------------------------------------------------------------------------------
# Gate futures.public_liquidates
# ---------------------------------------------------------------------------------------------
# Layout: Gate API v4 futures websocket, channel `futures.public_liquidates` (payload `!all` for
# every contract): result is a list of {contract, price, size, time}; `size` is the signed size
# of the liquidation ORDER (negative: a sell, so a long was liquidated), in contracts (integer,
# or text with the X-Gate-Size-Decimal header); `time` is in ms since 2026-08-20 (seconds, with
# `time_ms` beside it, before). Since 2026-08-20 a contract's liquidations of one aggregation
# period (1 s) come as one array; before, all but one per second per contract were DROPPED.
# USD = |size| * quanto_multiplier (base units per contract) * price; the multiplier comes from
# `contract_size(contract)` (exchanges.venues.gate.contract_sizes, then Gate's own
# GET /api/v4/futures/usdt/contracts, loaded by the stream) or the built-in table.

GATE_CONTRACT_SIZES: dict[str, Decimal] = {
    "BTC_USDT": Decimal("0.0001"),  # Gate docs, futures.contract_info example
}


def parse_gate_liquidates(
    msg: Mapping[str, Any],
    contract_size: ContractSize | None = None,
    errors: list[str] | None = None,
) -> list[Liquidation]:
    """Gate `futures.public_liquidates` update: every entry of `result`."""
    if not isinstance(msg, Mapping):
        raise MalformedMessage("a Gate message must be a JSON object")
    result = msg.get("result")
    if not isinstance(result, list):
        raise MalformedMessage("Gate public_liquidates: 'result' is not a list")
    out: list[Liquidation] = []
    for i, entry in enumerate(result):
        try:
            if not isinstance(entry, Mapping):
                raise MalformedMessage("entry is not an object")
            out.append(_gate_entry(entry, contract_size))
        except MalformedMessage as exc:
            _entry_error(errors, f"Gate public_liquidates result[{i}]", exc)
    return out


def _gate_entry(e: Mapping[str, Any], contract_size: ContractSize | None) -> Liquidation:
    contract = _text(e, "contract", "contract")
    size = to_number(e.get("size"), "size")
    if size == 0:
        raise MalformedMessage("size is zero")
    price = _positive(e.get("price"), "price")
    raw_time = e.get("time_ms", e.get("time"))
    seconds = to_number(raw_time, "time")
    ts_ms = to_ts_ms(int(seconds * 1000 if seconds < 10_000_000_000 else seconds), "time")
    multiplier = None if contract_size is None else contract_size(contract)
    per_contract = (
        _positive(multiplier, f"{contract} contract size")
        if multiplier is not None
        else GATE_CONTRACT_SIZES.get(contract)
    )
    if per_contract is None:
        raise MalformedMessage(
            f"{contract}: contract size unknown (not in Gate's contracts list nor in "
            "exchanges.venues.gate.contract_sizes): rejected, never guessed"
        )
    contracts = abs(size)
    side = "long" if size < 0 else "short"
    return make_liquidation(
        ts_ms=ts_ms,
        venue="gate",
        symbol=contract,
        side=side,
        notional_usd=contracts * per_contract * price,
        price=price,
        quantity=contracts * per_contract,
        event_id=_event_id("gate", contract, ts_ms, side, str(contracts), str(price)),
    )


# ---------------------------------------------------------------------------------------------
# dYdX v4 indexer v4_trades
# ---------------------------------------------------------------------------------------------
# Layout: docs.dydx.exchange, Indexer Websocket, channel `v4_trades` (id = market, BTC-USD): the
# `subscribed` message (a snapshot of recent trades) and each `channel_data` carry
# contents.trades: [{id, size, price, side, createdAt, type}]. `type` LIQUIDATED marks a
# liquidation; its `side` is the taker's, and a liquidation order is the taker (SELL = a long
# was liquidated). DELEVERAGED trades (a profitable position closed against a bankrupt one)
# are not liquidations: they are handed back apart, in `deleveraged`. USD = size x price (USDC).


def parse_dydx_trades(
    msg: Mapping[str, Any],
    errors: list[str] | None = None,
    deleveraged: list[Liquidation] | None = None,
) -> list[Liquidation]:
    """dYdX v4 `v4_trades` message: its LIQUIDATED trades (DELEVERAGED into `deleveraged`)."""
    if not isinstance(msg, Mapping):
        raise MalformedMessage("a dYdX message must be a JSON object")
    market = _text(msg, "id", "market id")
    contents = msg.get("contents")
    trades = contents.get("trades") if isinstance(contents, Mapping) else None
    if not isinstance(trades, list):
        raise MalformedMessage("dYdX v4_trades: 'contents.trades' is not a list")
    out: list[Liquidation] = []
    for i, trade in enumerate(trades):
        try:
            if not isinstance(trade, Mapping):
                raise MalformedMessage("trade is not an object")
            kind = trade.get("type")
            if kind not in ("LIQUIDATED", "DELEVERAGED"):
                continue
            liq = _dydx_trade(market, trade)
            if kind == "LIQUIDATED":
                out.append(liq)
            elif deleveraged is not None:
                deleveraged.append(replace(liq, kind="deleveraged"))
        except MalformedMessage as exc:
            _entry_error(errors, f"dYdX v4_trades trades[{i}]", exc)
    return out


def _dydx_trade(market: str, t: Mapping[str, Any]) -> Liquidation:
    taker = _text(t, "side", "side").upper()
    if taker not in ("BUY", "SELL"):
        raise MalformedMessage(f"unknown side {taker[:20]!r} (expected BUY or SELL)")
    size = _positive(t.get("size"), "size")
    price = _positive(t.get("price"), "price")
    created = _text(t, "createdAt", "time 'createdAt'")
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedMessage(f"time 'createdAt' is not ISO 8601: {created[:40]!r}") from None
    ts_ms = to_ts_ms(int(when.timestamp() * 1000), "time 'createdAt'")
    side = "long" if taker == "SELL" else "short"
    trade_id = str(t.get("id") or f"{ts_ms}:{size}:{price}")
    return make_liquidation(
        ts_ms=ts_ms,
        venue="dydx",
        symbol=market,
        side=side,
        notional_usd=size * price,
        price=price,
        quantity=size,
        event_id=f"dydx:{market}:{trade_id}",
    )


# ---------------------------------------------------------------------------------------------
# Bitget UTA v3 public `liquidation`
# ---------------------------------------------------------------------------------------------
# Layout: Bitget API docs, UTA > Websocket > Public > "Liquidation Channel"
# (bitget.com/api-doc/uta/websocket/public/Liquidation-Channel), wss://ws.bitget.com/v3/ws/public,
# subscribe {"op": "subscribe", "args": [{"instType": "usdt-futures", "topic": "liquidation"}]}
# (also coin-futures, usdc-futures). Push: {"data": [{symbol, side, price, amount, ts}], "arg":
# {instType, topic}, "action": "update", "ts"}. Bitget's description: pushed once a second,
# "only the record with the highest liquidation quantity for long and short positions
# respectively per trading pair", "at most 2 records": a floor. UTA and Classic both covered.
# NOT SETTLED by the docs: `side` and the unit of `amount` appear only in the push example
# ("side": "buy", "amount": "37.722858", "price": "89000"); the push-parameter table could not
# be read. We read `side` as the liquidation ORDER side, as Bitget's futures Fill Channel uses
# it ("Trade direction"; "Close Long ... the side will be sell"; `burst_close_long`: "Liquidate
# long positions"), and `amount` as base-coin quantity: USD = amount x price.
# A refused subscribe is {"event": "error", "arg", "code", "msg"} (bot.sources.wsclient).

BITGET_INST_TYPES = ("usdt-futures", "coin-futures", "usdc-futures")


def parse_bitget_liquidation(
    msg: Mapping[str, Any], errors: list[str] | None = None
) -> list[Liquidation]:
    """Bitget UTA `liquidation` push: every entry of `data`."""
    if not isinstance(msg, Mapping):
        raise MalformedMessage("a Bitget message must be a JSON object")
    arg = msg.get("arg")
    inst_type = str(arg.get("instType", "")) if isinstance(arg, Mapping) else ""
    if inst_type not in BITGET_INST_TYPES:
        raise MalformedMessage(
            f"Bitget liquidation: instType {inst_type[:20]!r} is not one of "
            f"{', '.join(BITGET_INST_TYPES)}"
        )
    data = msg.get("data")
    if not isinstance(data, list):
        raise MalformedMessage("Bitget liquidation: 'data' is not a list")
    out: list[Liquidation] = []
    for i, entry in enumerate(data):
        try:
            if not isinstance(entry, Mapping):
                raise MalformedMessage("entry is not an object")
            out.append(_bitget_entry(entry))
        except MalformedMessage as exc:
            _entry_error(errors, f"Bitget liquidation data[{i}]", exc)
    return out


def _bitget_entry(e: Mapping[str, Any]) -> Liquidation:
    symbol = _text(e, "symbol", "symbol")
    order_side = _text(e, "side", "side").lower()
    if order_side not in ("buy", "sell"):
        raise MalformedMessage(f"unknown side {order_side[:20]!r} (expected buy or sell)")
    side = "long" if order_side == "sell" else "short"
    amount = _positive(e.get("amount"), "amount")
    price = _positive(e.get("price"), "price")
    ts_ms = to_ts_ms(e.get("ts"), "time 'ts'")
    return make_liquidation(
        ts_ms=ts_ms,
        venue="bitget",
        symbol=symbol,
        side=side,
        notional_usd=amount * price,
        price=price,
        quantity=amount,
        event_id=_event_id("bitget", symbol, ts_ms, side, str(amount), str(price)),
    )


# ---------------------------------------------------------------------------------------------
# HTX linear swap `public.<contract>.liquidation_orders`
# ---------------------------------------------------------------------------------------------
# Layout: HTX USDT-margined contracts API, "[General] Subscribe Liquidation Orders (no
# authentication) (sub)" (htx.com/en-us/opend/newApiPages/?id=8cb7e25d-77b5-11ed-9966-
# 0242ac110003), wss://api.hbdm.com/linear-swap-notification, gzip-compressed binary frames,
# {"op": "sub", "topic": "public.*.liquidation_orders"} (`*`: every contract of business_type
# swap). Server pings {"op": "ping", "ts"} and expects {"op": "pong", "ts"}. Data: {"op":
# "notify", "topic", "ts", "data": [{symbol, contract_code, direction, offset, volume
# (contracts), amount (base token), trade_turnover (quote, USDT), price (bankruptcy),
# created_at (ms), contract_type, pair, business_type}]}. NOT SETTLED by the docs: the table
# calls `direction` "Long or short", the example carries "sell" with offset "close"; in HTX's
# order vocabulary sell + close closes a long (its trade types: "4: sell long"), so we read it
# as the liquidation ORDER direction (sell = a long was liquidated). `offset` ("Open, close,
# both") is not used. USD = trade_turnover ("liquidation amount (quotation token)", USDT);
# when missing, amount ("(token)") x price ("bankruptcy price"). No sampling is mentioned;
# completeness is not stated either. A refused sub: a non-zero err-code and its err-msg.


def parse_htx_liquidation_orders(
    msg: Mapping[str, Any], errors: list[str] | None = None
) -> list[Liquidation]:
    """HTX `liquidation_orders` notify: every entry of `data`."""
    if not isinstance(msg, Mapping):
        raise MalformedMessage("an HTX message must be a JSON object")
    data = msg.get("data")
    if not isinstance(data, list):
        raise MalformedMessage("HTX liquidation_orders: 'data' is not a list")
    out: list[Liquidation] = []
    for i, entry in enumerate(data):
        try:
            if not isinstance(entry, Mapping):
                raise MalformedMessage("entry is not an object")
            out.append(_htx_entry(entry))
        except MalformedMessage as exc:
            _entry_error(errors, f"HTX liquidation_orders data[{i}]", exc)
    return out


def _htx_entry(e: Mapping[str, Any]) -> Liquidation:
    code = _text(e, "contract_code", "contract_code")
    direction = _text(e, "direction", "direction").lower()
    if direction not in ("buy", "sell"):
        raise MalformedMessage(f"unknown direction {direction[:20]!r} (expected buy or sell)")
    side = "long" if direction == "sell" else "short"
    price = _positive(e.get("price"), "bankruptcy price 'price'")
    amount = _positive(e.get("amount"), "amount (base token)")
    turnover = e.get("trade_turnover")
    usd = _positive(turnover, "trade_turnover") if turnover is not None else amount * price
    ts_ms = to_ts_ms(e.get("created_at"), "time 'created_at'")
    volume = str(e.get("volume", amount))
    return make_liquidation(
        ts_ms=ts_ms,
        venue="htx",
        symbol=code,
        side=side,
        notional_usd=usd,
        price=price,
        quantity=amount,
        event_id=_event_id("htx", code, ts_ms, side, volume, str(price)),
    )


# ---------------------------------------------------------------------------------------------
# Hyperliquid node fills (`--write-fills`)
# ---------------------------------------------------------------------------------------------
# Layout: Hyperliquid docs, "L1 data schemas" and the API's fill object: a non-validating node
# run with --write-fills writes one JSON line per fill, `[user, fill]` (node_fills), or one per
# block, {block_number, block_time, events: [[user, fill], ...]} (node_fills_by_block). A fill
# has coin, px, sz, side ("B" buy, "A" sell), time (ms), startPosition, dir, hash, tid and, when
# a liquidation made it, `liquidation`: {liquidatedUser, markPx, method}. Both sides of the
# trade carry the block; only the fill whose user IS the liquidatedUser is the liquidation.
# USD = sz * px (USDC-margined perps); a long was liquidated when that fill sells.


def parse_hyperliquid_fills(line: Any, errors: list[str] | None = None) -> list[Liquidation]:
    """One line of a node's fills output (either layout); [] for fills that liquidate no one."""
    if isinstance(line, Mapping) and isinstance(line.get("events"), list):
        pairs = line["events"]
    elif isinstance(line, list) and len(line) == 2 and isinstance(line[0], str):
        pairs = [line]
    else:
        raise MalformedMessage("not a Hyperliquid node fills line ([user, fill] or a block)")
    out: list[Liquidation] = []
    for i, pair in enumerate(pairs):
        try:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], Mapping)):
                raise MalformedMessage("event is not [user, fill]")
            liq = _hyperliquid_fill(str(pair[0]), pair[1])
            if liq is not None:
                out.append(liq)
        except MalformedMessage as exc:
            _entry_error(errors, f"Hyperliquid fills events[{i}]", exc)
    return out


# The fund's own accounts: the public websocket's `userFills` subscription (Hyperliquid docs,
# "Websocket > Subscriptions": {"method": "subscribe", "subscription": {"type": "userFills",
# "user": <address>}}; data WsUserFills {isSnapshot?, user, fills: [WsFill]}, a WsFill carrying
# `liquidation` (FillLiquidation {liquidatedUser?, markPx, method}) when a liquidation made it).
# ccxt's watchMyLiquidations subscribes to exactly this; we read the raw frames. The first
# message (isSnapshot: true) is the account's recent history, not counted.


def parse_hyperliquid_user_fills(
    msg: Mapping[str, Any], errors: list[str] | None = None
) -> list[Liquidation]:
    """A `userFills` push: the fills that liquidated the account itself; [] for a snapshot."""
    data = msg.get("data")
    if not isinstance(data, Mapping):
        raise MalformedMessage("Hyperliquid userFills: 'data' is not an object")
    if data.get("isSnapshot") is True:
        return []  # the account's history, sent on every (re)subscribe
    user = _text(data, "user", "user")
    fills = data.get("fills")
    if not isinstance(fills, list):
        raise MalformedMessage("Hyperliquid userFills: 'data.fills' is not a list")
    out: list[Liquidation] = []
    for i, fill in enumerate(fills):
        try:
            if not isinstance(fill, Mapping):
                raise MalformedMessage("fill is not an object")
            liq = _hyperliquid_fill(user, fill)
            if liq is not None:
                out.append(liq)
        except MalformedMessage as exc:
            _entry_error(errors, f"Hyperliquid userFills fills[{i}]", exc)
    return out


def _hyperliquid_fill(user: str, f: Mapping[str, Any]) -> Liquidation | None:
    info = f.get("liquidation")
    if not isinstance(info, Mapping):
        return None
    if str(info.get("liquidatedUser", "")).lower() != user.lower():
        return None  # the liquidator's or the counterparty's side of the same trade
    coin = _text(f, "coin", "coin")
    side_code = _text(f, "side", "side")
    if side_code not in ("A", "B"):
        raise MalformedMessage(f"unknown side {side_code[:10]!r} (expected A or B)")
    size = _positive(f.get("sz"), "size 'sz'")
    price = _positive(f.get("px"), "price 'px'")
    ts_ms = to_ts_ms(f.get("time"), "time")
    side = "long" if side_code == "A" else "short"
    fill_id = str(f.get("tid") or f.get("hash") or ts_ms)
    return make_liquidation(
        ts_ms=ts_ms,
        venue="hyperliquid",
        symbol=coin,
        side=side,
        notional_usd=size * price,
        price=price,
        quantity=size,
        event_id=f"hyperliquid:{coin}:{fill_id}:{user.lower()}",
    )


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------


def parse_raw_message(
    raw: Mapping[str, Any] | list[Any],
    contract_size: ContractSize | None = None,
    errors: list[str] | None = None,
    deleveraged: list[Liquidation] | None = None,
) -> list[Liquidation]:
    """Any venue's liquidation message; [] for control frames (subscribe acks, pongs).
    With `deleveraged`, dYdX's DELEVERAGED trades are appended there (kind "deleveraged")."""
    if isinstance(raw, list) or (isinstance(raw, Mapping) and "block_number" in raw):
        return parse_hyperliquid_fills(raw, errors)  # a node's fills line
    if not isinstance(raw, Mapping):
        raise MalformedMessage("a websocket message must be a JSON object")
    msg: Mapping[str, Any] = raw
    if isinstance(msg.get("data"), Mapping) and "stream" in msg:
        msg = msg["data"]  # Binance combined stream wrapper
    if msg.get("e") == "forceOrder":
        return parse_binance_force_order(msg, errors)
    topic = msg.get("topic")
    if isinstance(topic, str) and topic.startswith(("allLiquidation.", "liquidation.")):
        return parse_bybit_liquidation(msg, errors)
    arg = msg.get("arg")
    if isinstance(arg, Mapping) and arg.get("channel") == "liquidation-orders":
        if "data" not in msg:
            return []  # OKX subscribe ack {"event": "subscribe", "arg": ...}
        return parse_okx_liquidation_orders(msg, contract_size, errors)
    if msg.get("channel") == "futures.public_liquidates" and msg.get("event") == "update":
        return parse_gate_liquidates(msg, contract_size, errors)
    params = msg.get("params")
    if (
        msg.get("method") == "subscription"
        and isinstance(params, Mapping)
        and str(params.get("channel", "")).startswith("trades.")
    ):
        return parse_deribit_trades(msg, errors)
    if msg.get("channel") == "v4_trades" and msg.get("type") in ("subscribed", "channel_data"):
        return parse_dydx_trades(msg, errors, deleveraged)
    if isinstance(arg, Mapping) and arg.get("topic") == "liquidation" and "data" in msg:
        return parse_bitget_liquidation(msg, errors)
    if msg.get("channel") == "userFills":
        return parse_hyperliquid_user_fills(msg, errors)
    topic_text = str(topic or "")
    if msg.get("op") == "notify" and topic_text.endswith(".liquidation_orders"):
        return parse_htx_liquidation_orders(msg, errors)
    if _is_control(msg):
        return []
    keys = ", ".join(sorted(str(k) for k in msg)[:6])
    raise MalformedMessage(
        "not a Binance, Bybit, OKX, Deribit, Gate, dYdX, Bitget, HTX or Hyperliquid liquidation "
        "message "
        f"(keys: {keys})"
    )


def _is_control(msg: Mapping[str, Any]) -> bool:
    # Subscribe/pong acknowledgements of the three venues carry no liquidations.
    if msg.get("event") in ("subscribe", "unsubscribe") or msg.get("op") in (
        "subscribe",
        "pong",
        "ping",
    ):
        return True
    if str(msg.get("channel", "")).startswith("futures.") and msg.get("event") != "update":
        return True  # Gate subscribe acks and futures.pong
    if msg.get("method") == "heartbeat":
        return True  # Deribit
    if msg.get("type") in ("connected", "unsubscribed"):
        return True  # dYdX
    if msg.get("channel") in ("subscriptionResponse", "pong"):
        return True  # Hyperliquid
    if msg.get("op") in ("sub", "unsub") and "err-code" in msg:
        return True  # HTX subscribe answers (a refused one stops the stream blind: wsclient)
    # Binance's {"result": null, "id": 1}; Deribit's JSON-RPC answers (subscribe, public/test)
    return "result" in msg and "id" in msg and (len(msg) <= 3 or msg.get("jsonrpc") == "2.0")
