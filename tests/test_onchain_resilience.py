"""The live on-chain source never dies silently: rejected logs, a stuck node, a failing loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loguru import logger

from bot.journal import SqlJournal
from bot.sources.onchain.history import LogReader
from bot.sources.onchain.live import OnchainSource
from bot.sources.onchain.rpc import http_web3
from tests.chain.anvil import Anvil
from tests.chain.fixtures import anvil, anvil_world, proxy  # noqa: F401
from tests.chain.proxy import RpcProxy
from tests.chain.tap import Tap, make_source
from tests.chain.world import World

API_KEY_FAKE = "k3y-0f-the-t3st-pr0v1der"  # in the RPC URL's path, as providers put it


async def tx_of(world: World, block: int) -> tuple[str, int]:
    """(tx hash, log index) of the one log in `block`, as the chain says."""
    (log,) = await world.w3.eth.get_logs({"fromBlock": block, "toBlock": block})
    return "0x" + bytes(log["transactionHash"]).hex(), int(log["logIndex"])


def journal_text(journal: SqlJournal) -> str:
    return json.dumps(journal.recent(500), default=str)


def capture_own_logs(lines: list[str]) -> int:
    """A loguru sink of liqguard's own records. (Libraries' records, web3 logging its request
    URL at DEBUG, are redacted by bot.logs' filter: the factory registers RPC URLs.)"""

    def own(record: Any) -> bool:
        return str(record["name"] or "").startswith("bot.")

    return logger.add(lambda m: lines.append(str(m)), level="DEBUG", filter=own)


async def test_unpriceable_liquidations_are_rejected_journaled_and_the_source_goes_on(
    anvil: Anvil, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    w.tokens["BAD"] = await w.deploy("BrokenERC20")  # decimals() and symbol() revert
    w.tokens["NOPRICE"] = await w.deploy("ERC20", "NOPRICE", 18)  # the oracle reverts for it
    journal = SqlJournal(f"sqlite:///{tmp_path / 'j.sqlite'}")
    start = await w.w3.eth.block_number + 1
    bad_token = await w.aave_liquidation("pool_core", "BAD", 10**18)
    bad_oracle = await w.aave_liquidation("pool_core", "NOPRICE", 10**18)
    good = await w.aave_liquidation("pool_core", "WETH", 2 * 10**18)
    source = make_source(w, anvil.http_url, None, journal, start_block=start,
                         poll_interval_s=0.05)  # fmt: skip
    tap = Tap(source)

    first = await tap.next_liquidation()
    later = await w.aave_liquidation("pool_lido", "WBTC", 10**8)  # the source is still reading
    second = await tap.next_liquidation()

    assert (first.block_number, first.notional_usd) == (good, 2 * 3000.0)
    assert (second.block_number, second.notional_usd) == (later, 60000.0)
    rejected = {e["payload"]["block_number"]: e["payload"] for e in
                journal.find(kinds=["onchain_rejected"])}  # fmt: skip
    assert sorted(rejected) == [bad_token, bad_oracle]
    for block, why in ((bad_token, "broken token"), (bad_oracle, "no price source")):
        payload = rejected[block]
        assert (payload["tx_hash"], payload["log_index"]) == await tx_of(w, block)
        assert why in payload["reason"] and payload["chain"] == "test"
    assert source.rejected == 2
    assert tap.statuses == []  # rejected logs are no feed failure
    await tap.stop()


async def test_malformed_logs_from_the_node_are_rejected(
    proxy: RpcProxy, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    journal = SqlJournal(f"sqlite:///{tmp_path / 'j.sqlite'}")
    start = await w.w3.eth.block_number + 1
    mangled = await w.aave_liquidation("pool_core", "WETH", 10**18)
    good = await w.aave_liquidation("pool_core", "WBTC", 10**8)

    def mangle(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for log in logs:
            if int(log["blockNumber"], 16) == mangled:
                out.append({**log, "data": "0x1234"})  # too short for the event
                out.append({"removed": False, "data": "0x"})  # no position at all
            else:
                out.append(log)
        return out

    proxy.mangle_logs = mangle
    source = make_source(w, proxy.http_url, None, journal, start_block=start,
                         poll_interval_s=0.05)  # fmt: skip
    tap = Tap(source)

    assert (await tap.next_liquidation()).block_number == good
    later = await w.aave_liquidation("pool_core", "WETH", 10**18)
    assert (await tap.next_liquidation()).block_number == later

    entries = [e["payload"] for e in journal.find(kinds=["onchain_rejected"])]
    assert len(entries) == 2
    by_position = {p.get("block_number"): p for p in entries}
    short = by_position[mangled]
    assert (short["tx_hash"], short["log_index"]) == await tx_of(w, mangled)
    assert "does not fit" in short["reason"]
    assert "without a valid position" in by_position[None]["reason"]
    assert tap.statuses == []
    await tap.stop()


async def test_a_node_that_stops_making_blocks_turns_blind_then_live(
    anvil: Anvil, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world  # anvil mines only on transactions: idle, its head stands still
    journal = SqlJournal(f"sqlite:///{tmp_path / 'j.sqlite'}")
    # 2 s: block timestamps have whole seconds, so a fresh head may look up to 1 s old.
    # No poll for an hour: the watchdog wakes the loop itself, the websocket rings at heads.
    source = make_source(w, anvil.http_url, anvil.ws_url, journal, max_head_age_s=2.0,
                         poll_interval_s=3600)  # fmt: skip
    tap = Tap(source)

    blind = await tap.next_status("blind")
    head = await w.w3.eth.block_number
    assert f"block {head}" in blind.detail and "max_head_age_s 2" in blind.detail
    assert blind.silent_s > 2.0 and blind.venue == "onchain-test"
    block = await w.aave_liquidation("pool_core", "WETH", 10**18)  # a new block: heads resume
    assert (await tap.next_liquidation()).block_number == block
    live = await tap.next_status("live")
    assert f"block {block}" in live.detail
    await tap.stop()
    assert [s.state for s in tap.statuses[:2]] == ["blind", "live"]  # idle again later: blind


async def test_garbage_from_the_node_is_blind_retried_and_recovers(
    proxy: RpcProxy, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    proxy.key_path = f"/v3/{API_KEY_FAKE}"
    journal = SqlJournal(f"sqlite:///{tmp_path / 'j.sqlite'}")
    start = await w.w3.eth.block_number + 1
    before = await w.aave_liquidation("pool_core", "WETH", 10**18)
    proxy.get_logs_garbage_next = 3  # eth_getLogs answers an HTML error page, three times
    lines: list[str] = []
    sink = capture_own_logs(lines)
    source = make_source(w, proxy.http_url, None, journal, start_block=start,
                         poll_interval_s=0.05, backoff_s=0.01, max_backoff_s=0.05)  # fmt: skip
    tap = Tap(source)
    try:
        blind = await tap.next_status("blind")
        assert "eth_getLogs" in blind.detail and "JSONDecodeError" in blind.detail
        assert (await tap.next_liquidation()).block_number == before  # retried with backoff
        await tap.next_status("live")
        assert proxy.get_logs_garbage_next == 0
        after = await w.aave_liquidation("pool_core", "WBTC", 10**8)
        assert (await tap.next_liquidation()).block_number == after
    finally:
        logger.remove(sink)
        await tap.stop()
    assert [s.state for s in tap.statuses] == ["blind", "live"]
    details = [s.detail for s in tap.statuses]
    assert all(API_KEY_FAKE not in text for text in [*lines, *details, journal_text(journal)])


class FlakyReader(LogReader):
    """A reader whose head() fails `failures` times with an error quoting the RPC URL."""

    def __init__(self, *args: Any, url: str, failures: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url, self.failures = url, failures

    async def head(self) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError(f"unexpected state talking to {self.url}")
        return await super().head()


async def test_an_unexpected_error_in_the_loop_is_blind_without_the_url(
    proxy: RpcProxy, anvil_world: World, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    w = anvil_world
    proxy.key_path = f"/v3/{API_KEY_FAKE}"
    journal = SqlJournal(f"sqlite:///{tmp_path / 'j.sqlite'}")
    chain = w.chain_config(poll_interval_s=0.05, backoff_s=0.01, max_backoff_s=0.05)
    reader = FlakyReader(http_web3(proxy.http_url), "test", chain, url=proxy.http_url,
                         failures=4)  # fmt: skip
    lines: list[str] = []
    sink = capture_own_logs(lines)
    tap = Tap(OnchainSource("test", reader, journal))
    try:
        blind = await tap.next_status("blind")
        assert "RuntimeError: unexpected state talking to <url>" in blind.detail
        await tap.next_status("live")
        block = await w.aave_liquidation("pool_core", "WETH", 10**18)
        assert (await tap.next_liquidation()).block_number == block
    finally:
        logger.remove(sink)
        await tap.stop()
    assert reader.failures == 0 and not tap.task.cancelled()
    details = [s.detail for s in tap.statuses]
    assert all(API_KEY_FAKE not in text for text in [*lines, *details, journal_text(journal)])
