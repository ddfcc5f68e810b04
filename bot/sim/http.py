"""Starting a look-alike's aiohttp app on 127.0.0.1 at a free port (the pagers', the bridges')."""

from __future__ import annotations

from aiohttp import web


async def start_local(
    app: web.Application, shutdown_timeout_s: float = 60.0
) -> tuple[web.AppRunner, str]:
    """The running app's runner (to clean up) and its base URL `http://127.0.0.1:<port>`."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"
