"""Venue faults the live tests need beyond a venue that dies (LocalBinance.die()).

- silent_tcp(): a port that accepts TCP connections and never answers (no HTTP, no upgrade):
  what a half-dead load balancer or a firewalled venue looks like
- restamp(msg, ts_ms): a Binance forceOrder frame stamped at `ts_ms` (stale or fresh frames)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SilentServer:
    port: int = 0
    accepted: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)


@asynccontextmanager
async def silent_tcp() -> AsyncIterator[SilentServer]:
    """127.0.0.1:<port> accepting connections, reading nothing, answering nothing."""
    state = SilentServer()

    async def on_client(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.accepted += 1
        state._writers.append(writer)  # kept open: the client waits for an answer forever
        state.connected.set()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    state.port = int(server.sockets[0].getsockname()[1])
    try:
        yield state
    finally:
        server.close()
        for w in state._writers:
            w.close()
        await server.wait_closed()


def restamp(msg: dict[str, Any], ts_ms: int) -> dict[str, Any]:
    """A Binance forceOrder frame as if traded at `ts_ms` (event time 1 ms later)."""
    return {**msg, "E": ts_ms + 1, "o": {**msg["o"], "T": ts_ms}}
