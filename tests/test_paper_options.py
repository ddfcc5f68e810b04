"""Options in the paper market: a put bought on the bundled crash gains as the price falls,
limits fill when model + half-spread reaches them, the spread widens in a cascade, Deribit's
fee, expiry settles to intrinsic in coin, selling back takes the bid, no writing, a vol index
moves the premium, and the account survives a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from itertools import pairwise
from pathlib import Path

import pytest

from bot.brokers.options_model import black76
from bot.brokers.paper import PaperBroker
from bot.config import ConfigError
from bot.config.paper import PaperConfig, PaperPositionConfig
from bot.events import OptionMark, OptionSettlement, OrderIntent, OrderResult, PriceTick
from bot.sources.prices import read_prices
from strategies.puts import option_symbol

S = "BTCUSDT"
PRICES = read_prices(Path(str(files("bot").joinpath("data", "BTCUSDT-5m_2024-12-04_06.csv"))))


def _ms(day: int, hour: int, minute: int = 0) -> int:
    return int(datetime(2024, 12, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


BUY_MS = _ms(5, 19, 45)  # the cascade's first level-2 anomaly is at 19:46
PUT = option_symbol("BTC", "USD", "BTC", BUY_MS, 7, 90_000.0, "P")  # BTC-241212-90000-P


class StepClock:
    """Time set by the test, one price tick at a time (no sleepers here)."""

    def __init__(self, now_ms: int) -> None:
        self.ts_ms = now_ms

    def now_ms(self) -> int:
        return self.ts_ms

    async def sleep_until(self, ts_ms: int) -> None:
        self.ts_ms = max(self.ts_ms, ts_ms)


def _broker(options: dict[str, object] | None = None, ts_ms: int = BUY_MS) -> PaperBroker:
    config = PaperConfig.model_validate(
        {
            "balance_usd": 100_000.0,
            "positions": (PaperPositionConfig(symbol=S, size=2.5, leverage=3),),
            "options": options or {},
        }
    )
    return PaperBroker(config, StepClock(ts_ms))


def _tick(broker: PaperBroker, ts_ms: int, price: float) -> list[object]:
    assert isinstance(broker.clock, StepClock)
    broker.clock.ts_ms = ts_ms
    return list(broker.on_price(PriceTick(ts_ms, S, price)))


def _buy(amount: float, limit_usd: float | None = 5_000.0, symbol: str = PUT) -> OrderIntent:
    kind = "limit" if limit_usd is not None else "market"
    return OrderIntent(
        "deribit", symbol, "buy", kind, amount, False, price=limit_usd, instrument="option"
    )


def _sell(amount: float, reduce_only: bool = True, symbol: str = PUT) -> OrderIntent:
    return OrderIntent(
        "deribit", symbol, "sell", "market", amount, reduce_only, instrument="option"
    )


async def test_a_put_bought_on_the_bundled_crash_gains_as_the_price_falls() -> None:
    broker = _broker()
    path = [t for t in PRICES if _ms(5, 12) <= t.ts_ms <= _ms(5, 23)]
    bought = None
    marks: list[tuple[float, float]] = []  # (price, mark per contract in USD)
    for tick in path:
        _tick(broker, tick.ts_ms, tick.price)
        if bought is None and tick.ts_ms >= BUY_MS:
            bought = await broker.submit(_buy(1.2), "h-0")
            assert bought.status == "filled"
        if bought is not None:
            (put,) = [p for p in (await broker.portfolio()).positions if p.symbol == PUT]
            marks.append((tick.price, put.mark_price))
    assert bought is not None
    (fill,) = bought.fills
    low_price, low_mark = min(marks)
    _, high_mark = max(marks)
    # the 22:30 wick to ~94k: the put is worth several times what it cost
    assert low_price < 94_100 and low_mark > 3 * fill.price
    assert high_mark < low_mark
    # marks follow the price the other way, tick by tick
    falls = [(p1 < p0) == (m1 > m0) for (p0, m0), (p1, m1) in pairwise(marks) if p1 != p0]
    assert all(falls)
    # the account's equity counts the put at its mark
    last_price, last_mark = marks[-1]
    perp = 2.5 * (last_price - broker.positions[("binance-usdm", S, "long")].entry_price)  # type: ignore[operator]
    assert broker.equity_usd() == pytest.approx(
        100_000.0 - 1.2 * fill.price - fill.fee_usd + perp + 1.2 * last_mark
    )


async def test_a_limit_fills_when_model_plus_half_spread_reaches_it() -> None:
    broker = _broker({"half_spread_pct": 5.0, "min_half_spread_coin": 0.0})
    _tick(broker, BUY_MS, 99_500.0)
    quote = broker.option_quote(PUT)
    assert quote is not None
    ask_usd = quote.ask_coin * quote.underlying
    years = (_ms(12, 8) - BUY_MS) / (365 * 86_400_000)
    model = black76("P", 99_500.0, 90_000.0, years, 0.6)
    assert ask_usd == pytest.approx(model * 1.05)
    short = await broker.submit(_buy(1.0, limit_usd=ask_usd - 0.01), "lo-0")
    assert short.status == "open" and short.fills == ()
    at = await broker.submit(_buy(1.0, limit_usd=ask_usd), "at-0")
    assert at.status == "filled" and at.fills[0].price == pytest.approx(ask_usd)
    # the resting limit fills at the ask once the price rises and the put cheapens
    (result,) = [e for e in _tick(broker, BUY_MS + 60_000, 100_500.0) if isinstance(e, OrderResult)]
    assert result.client_id == "lo-0" and result.status == "filled"
    assert result.fills[0].price <= ask_usd - 0.01


async def test_the_half_spread_widens_in_a_cascade_and_fees_follow_deribit() -> None:
    broker = _broker({"half_spread_pct": 2.0, "cascade_half_spread_pct_per_musd": 1.0})
    _tick(broker, BUY_MS, 99_500.0)
    calm = broker.option_quote(PUT)
    broker.set_stress(8_000_000.0)
    cascade = broker.option_quote(PUT)
    assert calm is not None and cascade is not None
    assert cascade.model_coin == pytest.approx(calm.model_coin)
    assert cascade.ask_coin - cascade.model_coin == pytest.approx(0.10 * cascade.model_coin)
    (fill,) = (await broker.submit(_buy(2.0, limit_usd=None), "m-0")).fills
    assert fill.price == pytest.approx(cascade.ask_coin * 99_500.0)
    fee_coin = min(0.0003 * 2.0, 0.125 * cascade.ask_coin * 2.0)
    assert fill.fee_usd == pytest.approx(fee_coin * 99_500.0)
    assert broker.balance_usd == pytest.approx(100_000.0 - 2.0 * fill.price - fill.fee_usd)


async def test_selling_back_takes_model_minus_the_half_spread() -> None:
    broker = _broker({"half_spread_pct": 3.0, "min_half_spread_coin": 0.0})
    _tick(broker, BUY_MS, 99_500.0)
    await broker.submit(_buy(1.5), "h-0")
    _tick(broker, _ms(5, 22, 35), 94_450.0)
    quote = broker.option_quote(PUT)
    assert quote is not None
    result = await broker.submit(_sell(1.5), "u-0")
    (fill,) = result.fills
    assert fill.price == pytest.approx(quote.model_coin * 0.97 * 94_450.0)
    assert broker.options == {} and (await broker.portfolio()).positions[0].symbol == S


async def test_expiry_settles_to_intrinsic_in_coin() -> None:
    broker = _broker()
    _tick(broker, BUY_MS, 99_500.0)
    await broker.submit(_buy(2.0), "h-0")
    otm = option_symbol("BTC", "USD", "BTC", BUY_MS, 7, 80_000.0, "P")
    await broker.submit(_buy(1.0, symbol=otm), "h-1")
    balance = broker.balance_usd
    assert not any(isinstance(e, OptionSettlement) for e in _tick(broker, _ms(12, 7, 59), 85_000))
    events = _tick(broker, _ms(12, 8), 85_000.0)  # 08:00 UTC on the expiry day
    settled = {e.symbol: e for e in events if isinstance(e, OptionSettlement)}
    itm = settled[PUT]
    assert itm.intrinsic_coin == pytest.approx(5_000.0 / 85_000.0)
    delivery_fee_coin = min(0.00015 * 2.0, 0.125 * itm.intrinsic_coin * 2.0)
    assert itm.fee_coin == pytest.approx(delivery_fee_coin)
    assert itm.paid_usd == pytest.approx(2.0 * 5_000.0 - delivery_fee_coin * 85_000.0)
    assert settled[otm].paid_usd == 0.0 and settled[otm].fee_coin == 0.0
    assert broker.balance_usd == pytest.approx(balance + itm.paid_usd)
    assert broker.options == {}
    late = await broker.submit(_buy(1.0), "late-0")
    assert late.status == "rejected" and "expired" in late.error


async def test_options_are_sold_back_never_written() -> None:
    broker = _broker()
    early = await broker.submit(_buy(1.0), "e-0")
    assert early.status == "rejected" and "no price for BTCUSDT" in early.error
    _tick(broker, BUY_MS, 99_500.0)
    naked = await broker.submit(_sell(1.0), "s-0")
    assert naked.status == "rejected" and "no option held" in naked.error
    await broker.submit(_buy(1.0), "h-0")
    write = await broker.submit(_sell(3.0, reduce_only=False), "s-1")
    assert write.status == "rejected" and "would write options" in write.error
    clipped = await broker.submit(_sell(3.0), "s-2")  # reduce-only: clipped to what is held
    assert clipped.fills[0].amount == pytest.approx(1.0)
    bad = await broker.submit(_buy(1.0, symbol="BTC-P"), "b-0")
    assert bad.status == "rejected" and "BASE/QUOTE:SETTLE-YYMMDD-STRIKE-P" in bad.error


async def test_marks_are_journaled_at_most_every_mark_journal_s() -> None:
    broker = _broker({"mark_journal_s": 300})
    _tick(broker, BUY_MS, 99_500.0)
    await broker.submit(_buy(1.0), "h-0")
    seen = []
    for minute in range(0, 16):
        ts = BUY_MS + minute * 60_000
        seen += [e for e in _tick(broker, ts, 99_000.0 - minute) if isinstance(e, OptionMark)]
    assert [e.ts_ms for e in seen] == [BUY_MS + m * 60_000 for m in (0, 5, 10, 15)]
    assert seen[-1].unrealized_usd == pytest.approx(seen[-1].mark_usd - seen[-1].entry_usd)


def test_an_iv_table_and_a_vol_index_set_the_premium(tmp_path: Path) -> None:
    table = {
        "moneyness": [0.8, 0.9, 1.0],
        "days": [1, 30],
        "iv": [[0.9, 0.7, 0.5], [0.8, 0.6, 0.5]],
    }
    flat, smile = _broker({"iv": 0.5}), _broker({"iv": table})
    for b in (flat, smile):
        _tick(b, BUY_MS, 100_000.0)
    q_flat, q_smile = flat.option_quote(PUT), smile.option_quote(PUT)
    assert q_flat is not None and q_smile is not None
    assert q_smile.iv > q_flat.iv == 0.5  # the 90% strike sits on the smile, above ATM
    # Generated for this test (not recorded data): a DVOL-style series, 50% then a 100% spike.
    vol = tmp_path / "dvol-generated.csv"
    vol.write_text(
        "timestamp,open,high,low,close\n"
        f"{BUY_MS - 3_600_000},50.0,51.0,49.0,50.0\n"
        f"{BUY_MS + 3_600_000},100.0,110.0,90.0,105.0\n"
    )
    indexed = _broker({"iv": table, "vol_file": str(vol)})
    _tick(indexed, BUY_MS, 100_000.0)
    before = indexed.option_quote(PUT)
    _tick(indexed, BUY_MS + 3_600_000, 100_000.0)
    spike = indexed.option_quote(PUT)
    assert before is not None and spike is not None
    assert before.iv == pytest.approx(q_smile.iv)  # the index at 50% = the table's 30d ATM
    _tick(smile, BUY_MS + 3_600_000, 100_000.0)
    later = smile.option_quote(PUT)
    assert later is not None and spike.iv == pytest.approx(2 * later.iv)  # the index doubled
    assert spike.model_coin > 2 * before.model_coin


def test_a_bad_vol_file_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "vol.csv"
    bad.write_text("1733270400000,0.55\n")
    with pytest.raises(ConfigError, match=r"paper\.options\.vol_file: .* percent"):
        _broker({"vol_file": str(bad)})
    with pytest.raises(ConfigError, match=r"paper\.options\.vol_file"):
        _broker({"vol_file": str(tmp_path / "missing.csv")})


async def test_held_options_and_resting_limits_survive_a_restart() -> None:
    broker = _broker()
    _tick(broker, BUY_MS, 99_500.0)
    await broker.submit(_buy(1.0), "h-0")
    await broker.submit(_buy(1.0, limit_usd=1.0), "h-1")  # rests: far below the ask
    again = _broker()
    again.restore(broker.snapshot())
    assert again.options.keys() == broker.options.keys()
    assert again.equity_usd() == pytest.approx(broker.equity_usd())
    book = await again.portfolio()
    assert [o.client_id for o in book.open_orders] == ["h-1"]
    assert [p.instrument for p in book.positions] == ["perp", "option"]
