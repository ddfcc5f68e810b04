"""The status page answers only requests that name it: a real aiohttp server on 127.0.0.1 and
a real client sending the Host header a browser would send. A page of another site whose name
was made to resolve to 127.0.0.1 (DNS rebinding) sends that site's name, and must not read the
account, nor press a button; an IP address, localhost and the names of http.allowed_hosts may.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from bot.config.ops import HttpConfig
from bot.ops import http

TOKEN = "FAKE-host-token"
ACCOUNT = {"mode": "paper", "positions": [{"symbol": "BTCUSDT", "qty": 1.5}]}


@pytest.fixture
async def page() -> AsyncIterator[tuple[str, list[Any]]]:
    pressed: list[Any] = []

    async def snapshot() -> dict[str, Any]:
        return ACCOUNT

    async def set_state(state: str, reason: str, who: str) -> None:
        pressed.append((state, who))

    controls = http.Controls(None, set_state, lambda *row: None, lambda: 0)
    app = http.status_app(
        snapshot, lambda: (True, "ok"), TOKEN, controls, allowed_hosts=("bot.lan",)
    )
    runner, _host, port = await http.serve_listen(app, "127.0.0.1:0", "http.listen")
    try:
        yield f"http://127.0.0.1:{port}", pressed
    finally:
        await runner.cleanup()


async def _get(base: str, path: str, host: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(base + path, headers={"Host": host}) as r:
        return r.status, await r.json(content_type=None) if path != "/healthz" else await r.text()


async def test_a_page_of_another_site_cannot_read_the_account(
    page: tuple[str, list[Any]],
) -> None:
    base, _ = page
    port = base.rsplit(":", 1)[1]
    status, body = await _get(base, "/api/status", f"evil.example:{port}")
    assert status == 403
    assert "positions" not in body and body["ok"] is False
    assert "'evil.example:" in body["message"] and "http.allowed_hosts" in body["message"]
    # a name ending like an allowed one is another name
    assert (await _get(base, "/api/status", f"bot.lan.evil.example:{port}"))[0] == 403
    assert (await _get(base, "/", f"evil.example:{port}"))[0] == 403
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"BOT.lan:{port}", f"[::1]:{port}"):
        status, body = await _get(base, "/api/status", host)
        assert status == 200, host
        assert body == ACCOUNT
    # a health probe may use any name (a service name in a container network)
    assert await _get(base, "/healthz", f"liqguard-svc:{port}") == (200, "ok: ok")


async def test_a_page_of_another_site_cannot_press_a_button(page: tuple[str, list[Any]]) -> None:
    base, pressed = page
    port = base.rsplit(":", 1)[1]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as s:
        headers = {**auth, "Host": f"evil.example:{port}"}
        async with s.post(f"{base}/api/halt", json={}, headers=headers) as r:
            assert r.status == 403
        assert pressed == []
        async with s.post(f"{base}/api/halt", json={}, headers=auth) as r:
            assert r.status == 200
    assert pressed == [("HALTED", "http:status page")]


def test_allowed_hosts_are_names_without_port_or_scheme() -> None:
    assert HttpConfig(allowed_hosts=[" Bot.LAN "]).allowed_hosts == ("bot.lan",)
    for bad in ("bot.lan:8088", "http://bot.lan", ""):
        with pytest.raises(ValidationError, match="without port or scheme"):
            HttpConfig(allowed_hosts=[bad])
