"""The venues ccxt does not stream: one small aiohttp websocket client, and a node's files.

- WsClient: dial (bounded by connect_timeout_s), send the subscriptions, ping on a timer,
  hand every decoded frame on; any failure or close raises, so the caller reconnects
- WsVenueStream: a VenueStream (same feed health, backoff with tenacity, dedupe by the merge)
  over WsClient for Deribit (`trades.*`, the `liquidation` field) and Gate
  (`futures.public_liquidates`, payload `!all`) and dYdX v4 (indexer `v4_trades`, LIQUIDATED)
- NodeFillsStream: a VenueStream over a Hyperliquid node's `--write-fills` output, followed
  as it grows (the newest file of a folder: the node rotates them hourly)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bot.config.venues import VenueConfig
from bot.sources.recording import RawRecorder
from bot.sources.streams import Emit, VenueStream, wall_ms

DEFAULT_URLS = {
    "deribit": "wss://www.deribit.com/ws/api/v2",
    "gate": "wss://fx-ws.gateio.ws/v4/ws/usdt",
    "dydx": "wss://indexer.dydx.trade/v4/ws",
}


class WsClient:
    """One websocket session: connect, subscribe, ping, read until it fails."""

    def __init__(
        self,
        url: str,
        subscriptions: Callable[[], list[dict[str, Any]]],
        ping: Callable[[], dict[str, Any]] | None,
        on_message: Callable[[Any], None],
        *,
        ping_s: float = 15.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.subscriptions = subscriptions
        self.ping = ping
        self.on_message = on_message
        self.ping_s = ping_s
        self.connect_timeout_s = connect_timeout_s

    async def session(self) -> None:
        """Run one connection to its end; always raises (a closed socket is a failure)."""
        async with aiohttp.ClientSession() as http:
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    ws = await http.ws_connect(self.url, autoping=True)
            except TimeoutError:
                raise ConnectionError(
                    f"connect timeout: no websocket handshake in {self.connect_timeout_s:g}s"
                ) from None
            async with ws:
                for request in self.subscriptions():
                    await ws.send_str(json.dumps(request))
                pinger = asyncio.create_task(self._ping(ws)) if self.ping else None
                try:
                    async for frame in ws:
                        if frame.type == aiohttp.WSMsgType.TEXT:
                            try:
                                decoded = json.loads(frame.data)
                            except ValueError:
                                decoded = frame.data  # a text pong
                            self.on_message(decoded)
                        elif frame.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                            break
                finally:
                    if pinger is not None:
                        pinger.cancel()
                        await asyncio.gather(pinger, return_exceptions=True)
            raise ConnectionError(f"closed by the venue (code {ws.close_code})")

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        assert self.ping is not None
        while True:
            await asyncio.sleep(self.ping_s)
            await ws.send_str(json.dumps(self.ping()))


def deribit_channels(cfg: VenueConfig) -> list[str]:
    """Every future of BTC and ETH by default; a currency (SOL) or an instrument name each."""
    names = cfg.symbols or ("BTC", "ETH")
    return [
        f"trades.{n}.100ms" if "-" in n else f"trades.future.{n}.100ms" for n in names
    ]  # 100ms: the public (unauthenticated) interval


def _subscriptions(venue: str, cfg: VenueConfig) -> Callable[[], list[dict[str, Any]]]:
    if venue == "deribit":
        channels = deribit_channels(cfg)
        return lambda: [
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "public/subscribe",
                "params": {"channels": channels},
            }
        ]
    if venue == "gate":
        contracts = list(cfg.symbols) or ["!all"]
        return lambda: [
            {
                "time": int(time.time()),
                "channel": "futures.public_liquidates",
                "event": "subscribe",
                "payload": contracts,
            }
        ]
    if venue == "dydx":  # one subscription per market
        markets = list(cfg.symbols) or ["BTC-USD", "ETH-USD"]
        return lambda: [{"type": "subscribe", "channel": "v4_trades", "id": m} for m in markets]
    raise ValueError(f"{venue}: no liquidation stream over the shared websocket client")


def _ping(venue: str) -> Callable[[], dict[str, Any]] | None:
    if venue == "dydx":
        return None  # the indexer pings with control frames; aiohttp answers them
    if venue == "deribit":
        return lambda: {"jsonrpc": "2.0", "id": 2, "method": "public/test", "params": {}}
    return lambda: {"time": int(time.time()), "channel": "futures.ping"}


class WsVenueStream(VenueStream):
    """Deribit or Gate liquidations over WsClient, with the feed health of every stream."""

    def __init__(
        self,
        venue: str,
        cfg: VenueConfig,
        emit: Emit,
        *,
        recorder: RawRecorder | None = None,
        now_ms: Callable[[], int] = wall_ms,
        reconnect_max_s: float = 30.0,
        reconnect_initial_s: float = 0.2,
    ) -> None:
        super().__init__(
            venue,
            None,
            cfg,
            emit,
            recorder=recorder,
            now_ms=now_ms,
            reconnect_max_s=reconnect_max_s,
            reconnect_initial_s=reconnect_initial_s,
        )
        self.client = WsClient(
            cfg.endpoints.ws or DEFAULT_URLS[venue],
            _subscriptions(venue, cfg),
            _ping(venue),
            self.on_raw,
            ping_s=cfg.ping_s,
            connect_timeout_s=cfg.connect_timeout_s,
        )

    def _contract_size(self, inst_id: str) -> float | None:
        return self.cfg.contract_sizes.get(inst_id)

    async def _session(self) -> None:
        self._sessions += 1
        self._session_frames = 0
        await self.client.session()

    async def close(self) -> None:
        await self._stop_tasks()
        if self.recorder is not None:
            self.recorder.close()


class NodeFillsStream(VenueStream):
    """A Hyperliquid node's fills, line by line, as the node writes them."""

    def __init__(
        self,
        cfg: VenueConfig,
        emit: Emit,
        *,
        poll_s: float = 0.2,
        now_ms: Callable[[], int] = wall_ms,
    ) -> None:
        super().__init__("hyperliquid", None, cfg, emit, now_ms=now_ms)
        if not cfg.fills_path:
            raise ValueError(
                "exchanges.venues.hyperliquid.fills_path is not set: give the folder a "
                "non-validating node run with --write-fills writes (~/hl/data/node_fills_by_block)"
            )
        self.path = Path(cfg.fills_path).expanduser()
        self.poll_s = poll_s
        self.following: Path | None = None  # the file being read, and how far (status, tests)
        self.offset = 0

    def _newest(self) -> Path | None:
        if self.path.is_file():
            return self.path
        if not self.path.is_dir():
            raise ValueError(f"exchanges.venues.hyperliquid.fills_path {self.path}: no such file")
        files = [p for p in self.path.rglob("*") if p.is_file()]
        return max(files, key=lambda p: (p.stat().st_mtime, str(p))) if files else None

    async def _session(self) -> None:
        current, offset, partial = self._newest(), 0, ""
        if current is not None:
            offset = current.stat().st_size  # from now on: history is for `liqguard detect`
        while True:
            newest = self._newest()
            if newest is not None and newest != current:
                current, offset, partial = newest, 0, ""  # the node rotated to a new file
            if current is not None:
                with current.open("r", encoding="utf-8") as f:
                    f.seek(offset)
                    chunk = f.read()
                    offset = f.tell()
                lines = (partial + chunk).split("\n")
                partial = lines.pop()  # a line the node is still writing
                for line in lines:
                    if line.strip():
                        self.on_raw(_decode(line))
            self.following, self.offset = current or self.path, offset
            await asyncio.sleep(self.poll_s)

    async def close(self) -> None:
        await self._stop_tasks()


def _decode(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return {"unreadable": line[:80]}
