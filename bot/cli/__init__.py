"""The `liqguard` command. Each subcommand lives in its own module and registers itself on the
group (bot.cli._group).

Exit codes: 0 success, 1 unreadable input or runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import typer

# liqguard does no linear algebra: numpy's BLAS threads would only spin beside Arrow's parse
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_COMMAND_MODULES = (
    "backtest",
    "calibrate",
    "config_cmd",
    "detect",
    "fetch",
    "health",
    "onchain",
    "run",
)


def _load(modules: tuple[str, ...] = _COMMAND_MODULES) -> typer.Typer:
    """The group with these subcommand modules imported (importing one registers it)."""
    from bot.cli._group import group

    for name in modules:
        importlib.import_module(f"bot.cli.{name}")
    return group


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole command, every subcommand registered
        return _load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    if sys.argv[1:2] == ["detect"]:
        _detect()
    # `liqguard health` loads only its own module: a probe run every few seconds must not load
    # the trading stack
    alone = sys.argv[1:2] == ["health"]
    _load((sys.argv[1],) if alone else _COMMAND_MODULES)()


def _detect() -> NoReturn:
    """`liqguard detect`, as a batch run: only its own module loads (the live bot's imports
    cost ~0.3 s), the tapes parse while it loads, and no time goes to the collector's passes
    over the imports' objects or to the interpreter's teardown of them and of the tape's
    arrays (~0.1 s): the run flushes its output and ends the process."""
    gc.disable()
    from bot.app.tape_prefetch import start

    start(sys.argv[2:])
    try:
        _load(("detect",))()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a reader that went away (| head): nothing to do
            stream.flush()
    os._exit(code or 0)
