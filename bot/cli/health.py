"""`liqguard health`: ask a running liqguard whether it is healthy (exit 0 yes, 1 no).

For containers and load balancers: one line on stdout, the exit code says it. It asks the
/healthz of the metrics or status-page listener; a hung event loop answers nothing in time.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

from bot.cli._group import group as app
from bot.config import ConfigError, load_settings
from bot.config.ops import parse_listen

TIMEOUT_S = 5.0


@app.command()
def health(
    url: Annotated[
        str | None, typer.Option("--url", help="the /healthz URL (default: from the config)")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="liqguard.yaml")] = None,
    timeout_s: Annotated[float, typer.Option("--timeout-s", min=0.1)] = TIMEOUT_S,
) -> None:
    """Is the running liqguard healthy? Exit 0 and 'ok: ...', or 1 and why not."""
    if url is None:
        url = _from_config(config)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            text = resp.read(500).decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as exc:
        text = exc.read(500).decode("utf-8", "replace").strip() or f"HTTP {exc.code}"
        typer.echo(text)
        raise typer.Exit(1) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        typer.echo(f"unhealthy: no answer from {url} in {timeout_s:g} s ({reason}): down or hung")
        raise typer.Exit(1) from None
    typer.echo(text)
    if not text.startswith("ok"):
        raise typer.Exit(1)


def _from_config(config: Path | None) -> str:
    path = config or (Path("liqguard.yaml") if Path("liqguard.yaml").is_file() else None)
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    listen = settings.metrics.listen or settings.http.listen
    if listen is None:
        typer.echo(
            "liqguard health: nothing to ask; set metrics.listen or http.listen in the config, "
            "or give --url http://HOST:PORT/healthz",
            err=True,
        )
        raise typer.Exit(2)
    host, port = parse_listen(listen, "listen")
    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    return f"http://{host}:{port}/healthz"
