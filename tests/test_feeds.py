"""Which rules a dead feed freezes: never report calm on what may be a dead feed."""

from __future__ import annotations

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
