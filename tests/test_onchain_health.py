"""The chain feed's health without a chain: states, the head-age watchdog, scrubbed reasons."""

from __future__ import annotations

import pytest

from bot.config.chains import (
    DEFAULT_MAX_HEAD_AGE_S,
    FALLBACK_MAX_HEAD_AGE_S,
    ChainConfig,
    CometMarket,
)
from bot.logs import register_secrets, scrub
from bot.sources.feeds import ChainHealth
from bot.sources.onchain import events as ev
from bot.sources.onchain.rpc import RangeRefused, RpcError


class FakeClock:
    def __init__(self, ms: int = 1_700_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


def test_a_head_that_stops_advancing_is_blind_until_a_new_one_arrives() -> None:
    clock = FakeClock()
    health = ChainHealth("onchain-eth", 60.0, clock)
    health.head_seen(100, clock.ms // 1000)
    clock.advance(59)
    assert health.check() is None and health.seconds_to_stale() == pytest.approx(1.0)
    health.head_seen(100, clock.ms // 1000 - 59)  # the same head again is no progress
    clock.advance(2)
    blind = health.check()
    assert blind is not None and blind.state == "blind" and blind.silent_s == pytest.approx(61)
    assert "no new block for 61s (last block 100" in blind.detail
    assert health.check() is None  # said once
    health.head_seen(101, clock.ms // 1000)
    live = health.check()
    assert live is not None and (live.state, live.detail) == ("live", "block 101, 0s old")


def test_a_node_that_advances_but_lags_is_blind() -> None:
    clock = FakeClock()
    health = ChainHealth("onchain-eth", 60.0, clock)
    health.head_seen(100, clock.ms // 1000 - 600)  # ten minutes behind, still arriving
    status = health.check()
    assert status is not None and status.state == "blind"
    assert "newest block 100 is 600s old" in status.detail


def test_no_head_at_all_counts_from_the_start() -> None:
    clock = FakeClock()
    health = ChainHealth("onchain-eth", 60.0, clock)
    health.problem("rpc", "node not answering: eth_blockNumber: HTTP 503")
    down = health.check()
    assert down is not None and down.state == "reconnecting" and "HTTP 503" in down.detail
    clock.advance(61)
    blind = health.check()
    assert blind is not None and blind.state == "blind" and "no block read yet" in blind.detail


def test_a_failing_loop_is_blind_first_and_live_when_everything_clears() -> None:
    clock = FakeClock()
    health = ChainHealth("onchain-eth", 60.0, clock)
    health.head_seen(7, clock.ms // 1000)
    health.problem("ws", "websocket down")
    assert (s := health.check()) is not None and s.state == "reconnecting"
    health.problem("loop", "reading the chain failed: boom")
    assert (s := health.check()) is not None and (s.state, s.detail) == (
        "blind", "reading the chain failed: boom",
    )  # fmt: skip
    health.problem("loop", None)
    assert (s := health.check()) is not None and s.state == "reconnecting"
    health.problem("ws", None)
    assert (s := health.check()) is not None and s.state == "live"


def test_default_head_age_per_chain_and_the_override() -> None:
    assert ChainConfig().head_age_limit_s() == DEFAULT_MAX_HEAD_AGE_S[1] == 60.0
    comet = CometMarket(address="0x" + "1" * 40)
    base = ChainConfig(chain_id=8453, aave={}, compound={"usdc": comet})
    assert base.head_age_limit_s() == 30.0
    assert ChainConfig(chain_id=31337).head_age_limit_s() == FALLBACK_MAX_HEAD_AGE_S
    assert ChainConfig(max_head_age_s=5).head_age_limit_s() == 5.0
    with pytest.raises(ValueError, match="max_head_age_s"):
        ChainConfig(max_head_age_s=0)


def test_scrub_removes_urls_and_registered_secrets() -> None:
    register_secrets(["s3cr3t-v4lue-for-scrub"])
    text = scrub(
        "failed at https://mainnet.infura.io/v3/abcdef0123 and wss://x.example/ws/KEY?x=1 then "
        "token s3cr3t-v4lue-for-scrub"
    )
    assert text == "failed at <url> and <url> then token ***"


def test_node_trouble_is_told_apart_from_answers_that_retrying_will_not_fix() -> None:
    assert RpcError("x", "rate").node_trouble and RpcError("x", "transient").node_trouble
    assert RangeRefused("x").node_trouble
    assert not RpcError("x").node_trouble  # fatal: a revert, garbage, a bad key


@pytest.mark.parametrize(
    "raw",
    [{"foo": 1}, "not a log", {"address": "0x12", "blockNumber": 1}, {"blockNumber": None}],
)
def test_a_log_without_a_position_raises_only_undecodable(raw: object) -> None:
    with pytest.raises(ev.UndecodableLog, match="without a valid position"):
        ev.log_ref(raw)
    assert isinstance(ev.describe_raw(raw), dict)
