"""Benchmark: what the next plan waits for its account, an instant after a reduction's order.

The live broker (bot.brokers.ccxt_broker, real ccxt with its rate limiter) against the local
Binance USD-M on 127.0.0.1. Each round sends a reduce-only market order, waits `delay`, then
times, alternately:
- liqguard: `broker.portfolio()`, what the next action's plan calls (the last read less the
  order's fill, while the re-read after the order is still to come);
- the baseline: `broker.refresh()`, a read of the venue at that moment, which is what the
  plan waited for before (positions, balance, open orders, behind ccxt's rate limit).
Rounds are apart by more than the limiter's refill, so each starts alike. Medians printed.

    .venv/bin/python bench/account_after_order.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bot.brokers.ccxt_broker import CcxtBroker
from bot.ccxt.exchange import make_exchange
from bot.config.venues import EndpointsConfig, VenueConfig
from bot.events import OrderIntent
from bot.sim.localexchange import local_secrets, serve
from bot.sim.localexchange.binance import LocalBinance

DELAYS_S = (0.05, 0.2)
SETTLE_S = 1.5  # between rounds: the re-read after each order done, the limiter refilled


async def _round(broker: CcxtBroker, cid: str, delay_s: float, read: bool) -> float:
    sell = OrderIntent("binance-usdm", "BTCUSDT", "sell", "market", 0.01, reduce_only=True)
    await broker.submit(sell, cid)
    await asyncio.sleep(delay_s)
    start = time.perf_counter()
    await (broker.refresh() if read else broker.portfolio())
    return (time.perf_counter() - start) * 1000


async def main(rounds: int) -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 10.0, 90_000.0)
    async with serve(server.app) as port:
        cfg = VenueConfig(
            endpoints=EndpointsConfig(rest=f"http://127.0.0.1:{port}", allow_insecure=True)
        )
        broker = CcxtBroker("binance", make_exchange("binance", cfg, local_secrets()))
        try:
            await broker.portfolio()
            ms: dict[tuple[float, bool], list[float]] = {}
            for k in range(rounds):
                for delay_s in DELAYS_S:
                    for read in (False, True):
                        await asyncio.sleep(SETTLE_S)
                        cid = f"bench-{k}-{delay_s}-{int(read)}"
                        ms.setdefault((delay_s, read), []).append(
                            await _round(broker, cid, delay_s, read)
                        )
        finally:
            await broker.close()
    print(f"next plan's account after a reduce-only order, medians of {rounds} rounds (ms):")
    print(f"{'after':>8} {'liqguard portfolio()':>22} {'a venue read (before)':>22}")
    for delay_s in DELAYS_S:
        ours = statistics.median(ms[delay_s, False])
        venue = statistics.median(ms[delay_s, True])
        print(f"{delay_s:7.2f}s {ours:22.1f} {venue:22.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
