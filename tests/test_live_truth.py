"""Live truth (issue 15), end to end against the local exchanges through the real wiring.

A feed is live only when data flows; a venue that dies or never answers freezes the rules that
count it (no calm); stale frames are journaled and counted, never traded; a disabled venue is
not streamed and does not block calm; a missing price fails the action saying so.
Real ccxt.pro streams -> the one merge -> Orchestrator -> (live) CcxtBroker on LocalBinance.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from bot.app.live import LiveSetupError, venue_names
from bot.app.runner import Refused, stream_names
from bot.config.loader import load_settings
from bot.events import Calm, Liquidation
from bot.notify.format import Notice
from bot.sim.localexchange import serve
from bot.sim.localexchange.binance import LocalBinance
from bot.sim.localexchange.faults import restamp, silent_tcp
from bot.sim.localexchange.tapes import tape_messages
from bot.sources.venues import parse_raw_message
from tests.live_tools import WAIT_S, Run, now_ms, until
from tests.live_tools import running as live_run
from tests.test_live_e2e import crossing_messages

TAPE = Path(__file__).resolve().parents[1] / "bot/data/binance-btcusdt_2024-12-04_06.csv"


def fresh(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    t = now_ms()
    return [restamp(m, t + k) for k, m in enumerate(messages)]


def settings_for(
    rest: str, ws: str, mode: str = "live", rules: list[dict[str, Any]] | None = None, **ex: Any
) -> Any:
    endpoints = {"rest": rest, "ws": ws, "allow_insecure": True}
    return load_settings(
        overrides={
            "mode": mode,
            "rules": rules or [{"name": "all", "window_s": 3600, "threshold_usd": 100_000.0}],
            "policy": {
                "levels": {1: [{"strategy": "reduce_exposure", "params": {"fraction": 0.5}}]},
                "calm": [],
            },
            "exchanges": {
                "venues": {
                    "binance": {"endpoints": endpoints, "connect_timeout_s": 1, "price_symbols": []}
                },
                "reconnect_max_s": 0.3,
                **ex,
            },
        }
    )


def running(
    tmp_path: Path, settings: Any, mode: str = "live", names: list[str] | None = None
) -> AbstractAsyncContextManager[Run]:
    names = names if names is not None else ["binance"]
    return live_run(tmp_path, settings, names, mode=mode, identity=f"truth-{mode}")


async def test_a_feed_is_live_only_on_data_and_a_dead_venue_alerts_once(tmp_path: Path) -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.8, 96_000.0)
    async with serve(server.app) as port:
        base = f"http://127.0.0.1:{port}"
        settings = settings_for(base, f"ws://127.0.0.1:{port}/ws", feed_alert_hold_s=0)
        async with running(tmp_path, settings) as run:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            subscribed = run.feed()  # subscribed, no frame yet
            await server.play(fresh(tape_messages(TAPE, 1)))
            await until(lambda: run.feed().get("state") == "live")
            await server.die()
            await until(lambda: run.sources[0].health.reconnects >= 5)  # retried, still down
            down = run.feed()
            down_alerts = [s for s in run.told.feeds() if s.state != "live"]
            server.revive()
            await until(lambda: server.subscribed.is_set())
            await server.play(fresh(tape_messages(TAPE, 2)[1:]))
            await until(lambda: run.feed().get("state") == "live")
            await run.orch.tick()  # the "back" alert goes once it held (hold 0 here)
            await run.orch.notifier.flush()
            states = run.feed_states()
            told = [s.state for s in run.told.feeds()]
    assert subscribed["state"] == "connecting"  # a sent subscription is not "live"
    assert down["state"] == "reconnecting" and "NetworkError" in down["detail"]
    # five failed reconnects or more: one journal row and one alert for the whole outage
    assert states == ["connecting", "live", "reconnecting", "live"]
    assert len(down_alerts) == 1
    assert told == ["live", "reconnecting", "live"]


async def test_a_venue_that_never_answers_is_reconnecting_and_no_calm_comes(
    tmp_path: Path,
) -> None:
    rest = LocalBinance()
    rules = [{"name": "all", "window_s": 0.2, "escalation_window_s": 0.2, "threshold_usd": 1000}]
    async with serve(rest.app) as port, silent_tcp() as silent:
        settings = settings_for(
            f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{silent.port}/ws", "paper", rules
        )
        async with running(tmp_path, settings, mode="paper") as run:
            await asyncio.wait_for(silent.connected.wait(), WAIT_S)  # TCP accepted, then nothing
            t0 = now_ms()  # an anomaly from before the venue went quiet
            await run.orch.handle(Liquidation(t0, "binance-usdm", "BTCUSDT", "long", 5_000.0))
            await until(lambda: run.feed().get("state") == "reconnecting")
            await until(lambda: now_ms() > t0 + 1_000)  # past the rule's window and escalation
            await run.orch.tick()
            feed, calms = run.feed(), run.rows("calm")
            anomalies = run.rows("anomaly")
            frozen = run.orch.feeds.frozen_rules(now_ms())
    assert len(anomalies) == 1
    assert "timeout" in feed["detail"].lower()  # the handshake timed out: reconnecting
    assert "live" not in [s.state for s in run.told.feeds()]
    assert calms == [] and frozen == {"all"}  # no calm while the venue is dead


async def test_stale_frames_are_journaled_counted_and_never_trade(tmp_path: Path) -> None:
    server = LocalBinance()
    server.set_position("BTCUSDT", 0.8, 96_000.0)
    stale = crossing_messages()  # the tape's own 2024 timestamps: a year or more old
    async with serve(server.app) as port:
        base = f"http://127.0.0.1:{port}"
        settings = settings_for(base, f"ws://127.0.0.1:{port}/ws")
        async with running(tmp_path, settings) as run:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            await server.play(stale)
            await until(lambda: run.feed().get("stale") == len(stale))
            anomalies_on_stale = run.rows("anomaly")
            orders_on_stale = list(server.orders)
            refused = run.rows("liquidation_stale")
            await run.orch.notifier.flush()
            skew = [s for s in run.told.feeds() if "clock skew" in s.detail]
            await server.play(fresh(stale))  # the same frames, fresh: the path itself works
            await asyncio.wait_for(server.order_arrived.wait(), WAIT_S)
    assert orders_on_stale == [] and anomalies_on_stale == []
    assert len(refused) == len(stale) and "max_event_age_s 60" in refused[0]["reason"]
    assert refused[0]["venue"] == "binance-usdm"
    assert len(skew) == 1 and "binance" in skew[0].detail  # the alert names the venue
    assert len(server.orders) == 1


async def test_a_disabled_venue_is_not_streamed_and_does_not_block_calm(tmp_path: Path) -> None:
    server = LocalBinance()
    rules = [{"name": "all", "window_s": 0.2, "escalation_window_s": 0.2, "threshold_usd": 1000}]
    async with serve(server.app) as port:
        base = f"http://127.0.0.1:{port}"
        settings = settings_for(base, f"ws://127.0.0.1:{port}/ws", "paper", rules)
        settings = settings.model_copy(
            update={
                "exchanges": settings.exchanges.model_copy(
                    update={
                        "venues": {
                            **settings.exchanges.venues,
                            "bybit": settings.exchanges.venue("bybit").model_copy(
                                update={"enabled": False}
                            ),
                            "okx": settings.exchanges.venue("okx").model_copy(
                                update={"enabled": False}
                            ),
                        }
                    }
                )
            }
        )
        assert stream_names(settings, None) == ["binance"]  # `run --live` without --source
        with pytest.raises(LiveSetupError, match=r"exchanges\.venues\.bybit\.enabled is false"):
            venue_names("binance,bybit", settings)
        async with running(tmp_path, settings, mode="paper", names=[]) as run:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            msgs = fresh(tape_messages(TAPE, 30))
            usd = sum(liq.notional_usd for m in msgs for liq in parse_raw_message(m))
            await server.play(msgs)
            await until(lambda: len(run.rows("anomaly")) >= 1)
            first_tick_ms = now_ms()
            await until(lambda: now_ms() > first_tick_ms + 1_000)
            await run.orch.tick()
            await run.orch.notifier.flush()
            calms = [e for e in run.told.events if isinstance(e, Calm)]
            feeds = set(run.orch.status()["feeds"])
    assert usd >= 1000
    assert feeds == {"binance"}  # bybit and okx were never dialled
    assert [c.rule for c in calms] == ["all"]


def test_every_venue_disabled_refuses_to_run() -> None:
    settings = load_settings(
        overrides={
            "exchanges": {
                "venues": {n: {"enabled": False} for n in ("binance", "bybit", "okx")},
            }
        }
    )
    with pytest.raises(Refused, match="every venue is disabled") as err:
        stream_names(settings, None)
    assert err.value.exit_code == 2


async def test_a_missing_price_fails_the_action_saying_so(tmp_path: Path) -> None:
    """Paper on live data before the first mark: the paper account holds BTCUSDT unpriced."""
    server = LocalBinance()
    async with serve(server.app) as port:
        base = f"http://127.0.0.1:{port}"
        settings = settings_for(base, f"ws://127.0.0.1:{port}/ws", "paper")
        async with running(tmp_path, settings, mode="paper") as run:
            await asyncio.wait_for(server.subscribed.wait(), WAIT_S)
            await server.play(fresh(crossing_messages()))
            await until(lambda: bool(run.rows("action_end")))
            await run.orch.notifier.flush()
            ends = run.rows("action_end")
            notices = [e for e in run.told.events if isinstance(e, Notice)]
    assert [e["status"] for e in ends] == ["failed: no price for BTCUSDT"]
    assert "nothing to do" not in ends[0]["detail"]
    assert any("no price for BTCUSDT" in n.title for n in notices)
