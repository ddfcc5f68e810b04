"""The venues ccxt does not stream: one small aiohttp websocket client, and a node's files.

- WsClient: dial (bounded by connect_timeout_s), send the subscriptions, ping on a timer,
  hand every decoded frame on; any failure or close raises, so the caller reconnects
- WsVenueStream: a VenueStream (same feed health, backoff with tenacity, dedupe by the merge)
  over WsClient for Deribit (`trades.*`, the `liquidation` field) and Gate
  (`futures.public_liquidates`, payload `!all`; every contract's size from Gate's contracts
  endpoint, at start and again for a contract it did not list) and dYdX v4 (indexer
  `v4_trades`, LIQUIDATED) and Bitget (UTA v3 `liquidation`) and HTX
  (`public.*.liquidation_orders`: gzip binary frames, the server's `{"op": "ping"}` answered
  with a pong); a refused subscription stops the feed blind with the venue's reason
- NodeFillsStream: a VenueStream over a Hyperliquid node's `--write-fills` output, followed
  as it grows (the newest file of a folder: the node rotates them hourly)
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from loguru import logger

from bot.config.venues import VenueConfig
from bot.sources.recording import RawRecorder
from bot.sources.refusals import SubscriptionRefused, refusal
from bot.sources.streams import Emit, VenueStream, wall_ms

DEFAULT_URLS = {
    "deribit": "wss://www.deribit.com/ws/api/v2",
    "gate": "wss://fx-ws.gateio.ws/v4/ws/usdt",
    "dydx": "wss://indexer.dydx.trade/v4/ws",
    "bitget": "wss://ws.bitget.com/v3/ws/public",
    "htx": "wss://api.hbdm.com/linear-swap-notification",
}

# Gate's contract list (GET /futures/{settle}/contracts: `name`, `quanto_multiplier`)
GATE_REST = "https://api.gateio.ws"
GATE_CONTRACTS_PATH = "/api/v4/futures/usdt/contracts"
GATE_RETRY_UNKNOWN_S = 600.0  # a contract still unknown after a reload is asked again after this

Ping = Callable[[], dict[str, Any] | str]
Reply = Callable[[Any], dict[str, Any] | None]


class WsClient:
    """One websocket session: connect, subscribe, ping, read until it fails."""

    def __init__(
        self,
        url: str,
        subscriptions: Callable[[], list[dict[str, Any]]],
        ping: Ping | None,
        on_message: Callable[[Any], None],
        *,
        ping_s: float = 15.0,
        connect_timeout_s: float = 10.0,
        reply: Reply | None = None,
        before: Callable[[Any], Awaitable[None]] | None = None,
    ) -> None:
        self.url = url
        self.subscriptions = subscriptions
        self.ping = ping
        self.on_message = on_message
        self.ping_s = ping_s
        self.connect_timeout_s = connect_timeout_s
        self.reply = reply  # the answer a venue's own ping wants (HTX), if any
        self.before = before  # awaited before a frame is handed on (Gate: size a new contract)

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
                        if frame.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                            decoded = _decode_frame(frame.data)
                            answer = self.reply(decoded) if self.reply else None
                            if answer is not None:
                                await ws.send_str(json.dumps(answer))
                            if self.before is not None:
                                await self.before(decoded)
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
            ping = self.ping()
            await ws.send_str(ping if isinstance(ping, str) else json.dumps(ping))


def _decode_frame(data: str | bytes) -> Any:
    """JSON text, or gzip-compressed JSON in a binary frame (HTX); a text pong stays text."""
    if isinstance(data, bytes):
        try:
            data = gzip.decompress(data).decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError):
            return {"unreadable": "binary frame that is not gzip-compressed UTF-8"}
    try:
        return json.loads(data)
    except ValueError:
        return data


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
    if venue == "bitget":  # one channel per product type; symbols are filtered by the rules
        kinds = list(cfg.symbols) or ["usdt-futures", "coin-futures", "usdc-futures"]
        args = [{"instType": k, "topic": "liquidation"} for k in kinds]
        return lambda: [{"op": "subscribe", "args": args}]
    if venue == "htx":  # `*`: every linear swap; or one contract code (BTC-USDT) each
        codes = list(cfg.symbols) or ["*"]
        return lambda: [
            {"op": "sub", "cid": f"liqguard-{i}", "topic": f"public.{c}.liquidation_orders"}
            for i, c in enumerate(codes)
        ]
    raise ValueError(f"{venue}: no liquidation stream over the shared websocket client")


def _ping(venue: str) -> Ping | None:
    if venue in ("dydx", "htx"):
        return None  # the venue pings (control frames; HTX's JSON ping, answered by _reply)
    if venue == "bitget":
        return lambda: "ping"  # Bitget: the text "ping", answered by the text "pong"
    if venue == "deribit":
        return lambda: {"jsonrpc": "2.0", "id": 2, "method": "public/test", "params": {}}
    return lambda: {"time": int(time.time()), "channel": "futures.ping"}


def _reply(venue: str) -> Reply | None:
    if venue != "htx":
        return None

    def pong(msg: Any) -> dict[str, Any] | None:
        # HTX's notification websocket wants each ping answered with its own ts
        if isinstance(msg, dict) and msg.get("op") == "ping":
            return {"op": "pong", "ts": msg.get("ts")}
        return None

    return pong


class WsVenueStream(VenueStream):
    """Deribit, Gate, dYdX, Bitget or HTX liquidations over WsClient, with common feed health."""

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
            self._on_frame,
            ping_s=cfg.ping_s,
            connect_timeout_s=cfg.connect_timeout_s,
            reply=_reply(venue),
            before=self._size_new_contracts if venue == "gate" else None,
        )
        self.gate_sizes: dict[str, float] = {}  # Gate: quanto_multiplier by contract, loaded
        self.gate_loads = 0  # how often the list was loaded (status, tests)
        self._gate_loaded_ms: int | None = None
        self._gate_asked_ms: dict[str, int] = {}  # unknown contract -> when a reload was tried

    def _contract_size(self, inst_id: str) -> float | None:
        # the user's own table first (a contract Gate lists wrongly), then Gate's list
        return self.cfg.contract_sizes.get(inst_id) or self.gate_sizes.get(inst_id)

    async def load_gate_contracts(self) -> None:
        """Every USDT-settled contract's quanto_multiplier, from Gate's contracts endpoint."""
        base = (self.cfg.endpoints.rest or GATE_REST).rstrip("/")
        url = base + GATE_CONTRACTS_PATH
        try:
            async with (
                asyncio.timeout(self.cfg.request_timeout_s),
                aiohttp.ClientSession() as http,
                http.get(url) as resp,
            ):
                if resp.status != 200:
                    raise ConnectionError(f"Gate contracts: HTTP {resp.status} from {url}")
                body = await resp.json(content_type=None)
        except TimeoutError:
            raise ConnectionError(
                f"Gate contracts: no answer from {url} in {self.cfg.request_timeout_s:g}s"
            ) from None
        except aiohttp.ClientError as exc:
            raise ConnectionError(f"Gate contracts: {type(exc).__name__} from {url}") from None
        if not isinstance(body, list):
            raise ConnectionError(f"Gate contracts: {url} did not answer a list of contracts")
        sizes: dict[str, float] = {}
        for c in body:
            try:
                name, size = str(c["name"]), float(c["quanto_multiplier"])
            except (KeyError, TypeError, ValueError):
                continue  # an odd entry: that contract stays unknown (rejected, never guessed)
            if size > 0:
                sizes[name] = size
        self.gate_sizes = sizes
        self.gate_loads += 1
        self._gate_loaded_ms = self.now_ms()

    async def _size_new_contracts(self, msg: Any) -> None:
        """Before a Gate update is parsed: reload the list once for a contract it lacks (a new
        listing), and when the list is older than `markets_refresh_s`."""
        if not isinstance(msg, dict) or msg.get("event") != "update":
            return
        result = msg.get("result")
        names = (
            {e.get("contract") for e in result if isinstance(e, dict)}
            if isinstance(result, list)
            else set()
        )
        now = self.now_ms()
        unknown = [
            n
            for n in names
            if isinstance(n, str)
            and self._contract_size(n) is None
            and now - self._gate_asked_ms.get(n, -(10**15)) >= GATE_RETRY_UNKNOWN_S * 1000
        ]
        loaded = self._gate_loaded_ms
        old = loaded is None or now - loaded >= self.cfg.markets_refresh_s * 1000
        if not unknown and not old:
            return
        for n in unknown:
            self._gate_asked_ms[n] = now
        try:
            await self.load_gate_contracts()
        except ConnectionError as exc:  # the entries stay unsized: rejected with a reason
            logger.warning("gate: contract list not reloaded: {}", exc)

    def _on_frame(self, message: Any) -> None:
        reason = refusal(self.venue, message)
        if reason is not None:
            self.health.last_frame_ms = self.now_ms()
            raise SubscriptionRefused(reason)  # ends the session: blind, with this reason
        self.on_raw(message)

    async def _session(self) -> None:
        self._sessions += 1
        self._session_frames = 0
        if self.venue == "gate":  # the sizes before the first liquidation (reconnecting if not)
            await self.load_gate_contracts()
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
