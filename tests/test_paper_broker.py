"""Paper broker: fills, slippage (worse in a cascade), fees, stops on the price path, paper
liquidation, hedge mode, idempotent client ids, and an account that survives a restart.
Options: tests/test_paper_options.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.brokers.paper import PaperBroker, liquidation_price
from bot.clock import SimClock
from bot.config import ConfigError
from bot.config.paper import PaperConfig, PaperPositionConfig, load_account
from bot.events import OrderIntent, OrderResult, PaperLiquidation, PriceTick
from bot.journal import SqlJournal, default_journal_url

V, S = "binance-usdm", "BTCUSDT"


def _config(**kw: object) -> PaperConfig:
    base: dict[str, object] = {
        "balance_usd": 50_000.0,
        "positions": (PaperPositionConfig(venue=V, symbol=S, side="long", size=2.0, leverage=4),),
        "slippage_bps": 10.0,
        "cascade_slippage_bps_per_musd": 5.0,
        "max_slippage_bps": 100.0,
        "fee_bps": 4.0,
    }
    base.update(kw)
    return PaperConfig.model_validate(base)


def _broker(**kw: object) -> tuple[PaperBroker, SimClock]:
    clock = SimClock(1_000)
    broker = PaperBroker(_config(**kw), clock)
    broker.on_price(PriceTick(1_000, S, 100_000.0))
    return broker, clock


def _sell(amount: float, reduce_only: bool = True, **kw: object) -> OrderIntent:
    return OrderIntent(V, S, "sell", "market", amount, reduce_only, **kw)  # type: ignore[arg-type]


async def test_entry_at_first_price_and_computed_liquidation_price() -> None:
    broker, _ = _broker()
    book = await broker.portfolio()
    (pos,) = book.positions
    mmr = broker.config.maintenance_margin_rate
    assert pos.entry_price == 100_000.0
    assert pos.liquidation_price == pytest.approx(100_000.0 * (1 - 1 / 4 + mmr))
    assert broker.initial_equity_usd == 50_000.0 and broker.pnl_usd() == 0.0


async def test_market_fill_slippage_fee_and_realized_pnl() -> None:
    broker, _ = _broker()
    broker.on_price(PriceTick(2_000, S, 110_000.0))
    result = await broker.submit(_sell(0.5), "a-0")
    (fill,) = result.fills
    slip = broker.config.slippage_bps / 1e4
    assert result.status == "filled"
    assert fill.price == pytest.approx(110_000.0 * (1 - slip))
    assert fill.fee_usd == pytest.approx(0.5 * fill.price * broker.config.fee_bps / 1e4)
    realized = 0.5 * (fill.price - 100_000.0)
    assert broker.balance_usd == pytest.approx(50_000.0 + realized - fill.fee_usd)
    assert (await broker.portfolio()).positions[0].size == pytest.approx(1.5)


async def test_cascade_makes_slippage_worse_up_to_the_cap() -> None:
    broker, _ = _broker()
    calm = broker.slippage_bps()
    broker.set_stress(4_000_000.0)
    assert broker.slippage_bps() == pytest.approx(
        calm + 4 * broker.config.cascade_slippage_bps_per_musd
    )
    broker.set_stress(1e12)
    assert broker.slippage_bps() == broker.config.max_slippage_bps
    fill = (await broker.submit(_sell(0.1), "a-1")).fills[0]
    assert fill.price == pytest.approx(100_000.0 * (1 - broker.config.max_slippage_bps / 1e4))


async def test_same_client_id_twice_never_fills_twice() -> None:
    broker, _ = _broker()
    first = await broker.submit(_sell(0.5), "dup-0")
    second = await broker.submit(_sell(0.5), "dup-0")
    assert second == first
    assert (await broker.portfolio()).positions[0].size == pytest.approx(1.5)
    assert await broker.lookup("dup-0", _sell(0.5)) == first
    assert await broker.lookup("never-0", _sell(0.5)) is None


async def test_stop_rests_then_triggers_on_the_price_path() -> None:
    broker, clock = _broker()
    stop = OrderIntent(V, S, "sell", "stop", 2.0, True, stop_price=95_000.0)
    assert (await broker.submit(stop, "stop-0")).status == "open"
    assert [o.client_id for o in (await broker.portfolio()).open_orders] == ["stop-0"]
    assert broker.on_price(PriceTick(2_000, S, 96_000.0)) == []
    await clock.advance_to(3_000)
    (result,) = broker.on_price(PriceTick(3_000, S, 94_000.0))
    assert isinstance(result, OrderResult) and result.status == "filled"
    assert result.fills[0].price < 94_000.0  # the gap plus slippage: worse than the stop
    assert (await broker.portfolio()).positions == ()
    assert await broker.lookup("stop-0", stop) == result


async def test_paper_liquidation_when_the_mark_crosses() -> None:
    broker, _ = _broker()
    stop = OrderIntent(V, S, "sell", "stop", 2.0, True, stop_price=10_000.0)
    await broker.submit(stop, "far-0")
    liq = broker.positions[(V, S, "long")].liquidation_price
    assert liq is not None
    events = broker.on_price(PriceTick(2_000, S, liq - 1.0))
    liquidations = [e for e in events if isinstance(e, PaperLiquidation)]
    assert len(liquidations) == 1 and liquidations[0].price == liq
    fee = 2.0 * liq * broker.config.liquidation_fee_bps / 1e4
    assert liquidations[0].realized_usd == pytest.approx(2.0 * (liq - 100_000.0) - fee)
    assert broker.positions == {} and broker.resting == {}  # its stop went with it
    assert broker.results["far-0"].status == "canceled"


async def test_one_way_netting_reduce_only_and_rejections() -> None:
    broker, _ = _broker()
    flip = await broker.submit(_sell(3.0, reduce_only=False), "f-0")
    assert flip.status == "filled"
    sides = [(p.side, p.size) for p in (await broker.portfolio()).positions]
    assert sides == [("short", pytest.approx(1.0))]  # 2 closed, 1 opened the other way
    hedge = OrderIntent("bybit", S, "sell", "market", 0.5, False)
    await broker.submit(hedge, "h-0")
    venues = sorted((p.venue, p.side) for p in (await broker.portfolio()).positions)
    assert venues == [(V, "short"), ("bybit", "short")]
    # reduce-only larger than the position is clipped to it
    buy_back = OrderIntent(V, S, "buy", "market", 5.0, True)
    assert (await broker.submit(buy_back, "u-0")).fills[0].amount == pytest.approx(1.0)
    assert [p.venue for p in (await broker.portfolio()).positions] == ["bybit"]
    again = await broker.submit(OrderIntent(V, S, "buy", "market", 1.0, True), "u-1")
    assert again.status == "rejected" and "would open" in again.error
    option = OrderIntent(
        "deribit", "BTC-P", "buy", "limit", 1.0, False, price=10.0, instrument="option"
    )
    assert "is not BASE/QUOTE:SETTLE" in (await broker.submit(option, "o-0")).error
    unknown = OrderIntent(V, "ETHUSDT", "sell", "market", 1.0, False)
    assert "no price" in (await broker.submit(unknown, "e-0")).error
    cancel = OrderIntent(V, S, "sell", "cancel", 0.0, True, cancel_client_id="nope")
    assert (await broker.submit(cancel, "c-0")).status == "rejected"


async def test_account_survives_a_restart_through_the_journal(tmp_path: Path) -> None:
    broker, clock = _broker()
    await broker.submit(_sell(0.5), "a-0")
    await broker.submit(OrderIntent(V, S, "sell", "stop", 1.5, True, stop_price=90_000.0), "s-0")
    url = default_journal_url(tmp_path / "j.sqlite")
    journal = SqlJournal(url)
    journal.put_state("paper:x", broker.snapshot())
    journal.close()

    again = PaperBroker(_config(), clock)
    again.restore(SqlJournal(url).get_state("paper:x") or {})
    assert await again.portfolio() == await broker.portfolio()
    assert again.balance_usd == broker.balance_usd
    assert await again.submit(_sell(0.5), "a-0") == broker.results["a-0"]  # still idempotent
    (triggered,) = again.on_price(PriceTick(5_000, S, 89_000.0))
    assert isinstance(triggered, OrderResult) and triggered.client_id == "s-0"


def test_liquidation_price_formula_and_portfolio_file(tmp_path: Path) -> None:
    assert liquidation_price("long", 100.0, 1.0, 0.005) == pytest.approx(0.5)
    assert liquidation_price("short", 100.0, 2.0, 0.005) == pytest.approx(149.5)
    good = tmp_path / "p.yaml"
    good.write_text("balance_usd: 10\npositions: [{symbol: ETHUSDT, side: short, size: 3}]\n")
    balance, positions = load_account(_config(portfolio_file=str(good)))
    assert balance == 10 and positions[0].symbol == "ETHUSDT"
    bad = tmp_path / "bad.yaml"
    bad.write_text("balance_usd: 10\npositions: [{symbol: ETHUSDT, size: -3}]\n")
    with pytest.raises(ConfigError, match=r"positions\[0\]\.size"):
        load_account(_config(portfolio_file=str(bad)))


async def test_worst_drawdown_follows_equity_on_the_price_path() -> None:
    broker, _ = _broker()  # 2 BTC long from 100,000
    path = [104_000.0, 96_000.0, 101_000.0, 99_000.0]
    for i, price in enumerate(path, start=2):
        broker.on_price(PriceTick(i * 1_000, S, price))
    size = 2.0
    # Peak at 104k, trough at 96k: the drawdown is the fall between them, not the end PnL.
    assert broker.max_drawdown_usd == pytest.approx(size * (104_000 - 96_000))
    assert broker.pnl_usd() == pytest.approx(size * (99_000 - 100_000))
    # A cut at 99k limits what a later fall can cost.
    await broker.submit(_sell(1.5), "cut-0")
    before = broker.max_drawdown_usd
    broker.on_price(PriceTick(9_000, S, 90_000.0))
    fall = broker.peak_equity_usd - broker.equity_usd()  # type: ignore[operator]
    assert broker.max_drawdown_usd == pytest.approx(max(before, fall))
    assert fall < size * (104_000 - 90_000)
    restored = PaperBroker(broker.config, broker.clock)
    restored.restore(broker.snapshot())
    assert restored.max_drawdown_usd == broker.max_drawdown_usd
