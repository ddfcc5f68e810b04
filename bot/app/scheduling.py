"""Periodic jobs on APScheduler 3.x (AsyncIOScheduler), all on wall time.

- tick (live/paper streams only; a replay ticks on its price events): detector clocks advance,
  windows drain, calm fires on time
- expire-approvals: cut off an approver still silent past its deadline; apply the default
- portfolio: refresh the account from the broker (live balances drift without us)
- heartbeat: a journaled "alive" mark, so `liqguard journal` shows when the bot last ran
- status: redraw the live view (optional callback)
- freeze-heap (live, once, HEAP_FREEZE_S after start): what start-up built leaves the garbage
  collector's passes (gc.freeze), so a full pass walks only what was made since
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.engine.orchestrator import Orchestrator

TICK_S = 1.0
EXPIRE_S = 2.0
PORTFOLIO_S = 15.0
HEARTBEAT_S = 30.0
HEAP_FREEZE_S = 10.0  # after start: markets loaded (streams and account), account read


def freeze_heap() -> None:
    """Move every object alive now (ccxt's markets, settings, the journal's key index) to the
    collector's permanent generation: never scanned again, and a full collection over what
    remains walks milliseconds less."""
    gc.freeze()


def build_scheduler(
    orchestrator: Orchestrator,
    *,
    live: bool,
    on_status: Callable[[], None] | None = None,
    status_s: float = 0.5,
) -> AsyncIOScheduler:
    """A scheduler with the jobs of this mode; call `.start()` inside the running loop."""
    scheduler = AsyncIOScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 5}
    )
    if live:
        scheduler.add_job(orchestrator.tick, "interval", seconds=TICK_S, id="tick")
        scheduler.add_job(
            orchestrator.refresh_portfolio, "interval", seconds=PORTFOLIO_S, id="portfolio"
        )
        run_date = datetime.now() + timedelta(seconds=HEAP_FREEZE_S)
        scheduler.add_job(freeze_heap, "date", run_date=run_date, id="freeze-heap")
    scheduler.add_job(orchestrator.expire_approvals, "interval", seconds=EXPIRE_S, id="expire")
    scheduler.add_job(orchestrator.heartbeat, "interval", seconds=HEARTBEAT_S, id="heartbeat")
    if on_status is not None:
        scheduler.add_job(on_status, "interval", seconds=status_s, id="status")
    return scheduler
