"""Which rules a dead feed freezes: never report calm on what may be a dead feed."""

from __future__ import annotations

from dataclasses import replace

from bot.app.telegram_control import feed_text
from bot.config.rules import RuleConfig
from bot.detector import Detector
from bot.events import Calm, FeedStatus, Liquidation
from bot.sources.feeds import FeedBook, tick_rules

RULES = [
    RuleConfig(name="all"),
    RuleConfig(name="cex", venues=("binance", "bybit")),
    RuleConfig(name="aave", venues=("aave-v3",)),
    RuleConfig(name="comp", venues=("compound-v3-cusdcv3",)),
]


# What each source says its feed carries (a chain feed: its lending markets' venues).
COVERS = {"onchain-ethereum": ("aave-v3", "compound-v3-cusdcv3")}


def frozen_by(*dead: str) -> set[str]:
    book = FeedBook(RULES)
    for venue in dead:
        book.on_status(FeedStatus(0, venue, "blind", silent_s=120, covers=COVERS.get(venue, ())))
    book.on_status(FeedStatus(0, "okx", "live"))
    return book.frozen_rules()


def test_an_exchange_feed_freezes_the_rules_that_count_it() -> None:
    assert frozen_by("binance") == {"all", "cex"}
    assert frozen_by("okx") == set()  # live


def test_a_chain_feed_freezes_the_rules_on_its_protocols() -> None:
    # The chain source reports as onchain-<chain>; its liquidations say aave-v3, compound-v3-...
    assert frozen_by("onchain-ethereum") == {"all", "aave", "comp"}


def test_frozen_rules_do_not_calm_on_ticks() -> None:
    rules = [RuleConfig(name="cex", venues=("binance",)), RuleConfig(name="aave", venues=("aave",))]
    det = Detector(rules)
    det.on_liquidation(Liquidation(0, "binance-usdm", "BTCUSDT", "long", 1_500_000.0))
    det.on_liquidation(Liquidation(0, "aave-v3", "WETH", "long", 1_500_000.0))
    later_ms = 3 * 3_600_000
    # Binance is blind: its rule stands still; the Aave rule calms on time.
    calms = tick_rules(det, later_ms, frozen={"cex"})
    assert [(c.rule, c.ts_ms) for c in calms] == [("aave", 7_200_000)]
    assert all(isinstance(c, Calm) for c in calms)
    levels = {s.rule: s.level for s in det.status()}
    assert levels == {"cex": 1, "aave": 0}


def test_a_flapping_feed_is_told_down_once_and_back_once_with_a_summary() -> None:
    book = FeedBook([RuleConfig(name="all")], flap_hold_s=30)
    told = []
    for ts_ms, state in [(0, "connecting"), (1_000, "live"), (2_000, "reconnecting")]:
        told += book.on_status(FeedStatus(ts_ms, "binance", state))  # type: ignore[arg-type]
    for k in range(4):  # back and down again, four times in eight seconds
        told += book.on_status(FeedStatus(3_000 + 2_000 * k, "binance", "live"))
        told += book.on_status(FeedStatus(4_000 + 2_000 * k, "binance", "reconnecting"))
    told += book.on_status(FeedStatus(11_000, "binance", "live"))
    assert book.due(20_000) == []  # not held long enough yet
    told += book.due(41_000)
    assert [s.state for s in told] == ["live", "reconnecting", "live"]
    assert "flapped 4 time(s)" in told[-1].detail
    assert book.due(90_000) == []  # told once


def test_a_rule_calms_only_after_its_feeds_were_live_for_its_whole_interval() -> None:
    rule = RuleConfig(name="cex", venues=("binance",), window_s=60, escalation_window_s=120)
    book = FeedBook([rule])
    book.on_status(FeedStatus(0, "binance", "connecting"))
    assert book.frozen_rules(500_000) == {"cex"}  # never live
    book.on_status(FeedStatus(10_000, "binance", "live"))
    assert book.frozen_rules(100_000) == {"cex"}  # live for 90 s of a 120 s interval
    assert book.frozen_rules(130_000) == set()


def test_stale_and_future_liquidations_are_refused_and_counted() -> None:
    book = FeedBook([RuleConfig(name="all")], max_event_age_s=60, future_tolerance_s=5)
    book.on_status(FeedStatus(0, "binance", "live"))
    liq = Liquidation(1_000_000, "binance-usdm", "BTCUSDT", "long", 1_000.0)
    assert book.admit(liq) is None  # no receive time: a replay keeps the tape's time
    assert book.admit(replace(liq, received_ms=1_030_000)) is None
    stale = book.admit(replace(liq, received_ms=1_061_000))
    future = book.admit(replace(liq, received_ms=990_000))
    assert stale is not None and stale[0] == "stale" and "61,000 ms old" in stale[1]
    assert future is not None and future[0] == "future" and "10,000 ms ahead" in future[1]
    assert {k: book.view(0)["binance"][k] for k in ("stale", "future")} == {"stale": 1, "future": 1}


def test_the_status_line_of_a_feed_shows_refused_liquidations() -> None:
    book = FeedBook([RuleConfig(name="all")])
    book.on_status(FeedStatus(0, "binance", "live"))
    book.admit(Liquidation(0, "binance-usdm", "BTCUSDT", "long", 1.0, received_ms=120_000))
    assert feed_text(book.view(120_000)["binance"]) == "live, silent 120s, 1 stale refused"
