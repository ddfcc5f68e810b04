"""Starts `liqguard` processes for tests/test_ha_failover.py in milliseconds instead of seconds.

A real `liqguard run` spends ~2 s (10 CPU-s on a loaded machine) importing its libraries; a
test that kills twenty leaders needs twenty-odd processes. This parent imports liqguard once,
then forks one child per line read on stdin (JSON: argv, env, log, cwd) and writes the child's
pid on stdout. Each child is an ordinary OS process running `bot.cli.main()` with that argv
(the code path of `python -m bot.cli`): SIGKILL and SIGSTOP hit it as they would any liqguard.
The parent starts no thread and no event loop before forking, so every child starts clean.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys

# what `liqguard run --live` under `ha:` imports, loaded once here (the rest loads in the child)
WARM = (
    "bot.cli",
    "bot.cli.run",
    "bot.app.runner",
    "bot.app.ha",
    "bot.app.wiring",
    "bot.app.live",
    "bot.app.gate",
    "bot.app.scheduling",
    "bot.ops.service",
    "bot.sources.feeds",
    "psycopg",
    "sqlalchemy.dialects.postgresql.psycopg",
    "apscheduler.triggers.interval",
    "strategies.reduce_exposure",
    "strategies.hedge",
    "strategies.halt",
    "strategies.puts",
    "strategies.stop_loss",
)


def main() -> None:
    for name in WARM:
        importlib.import_module(name)
    from bot.cli import _load

    _load()  # every subcommand registered, as `liqguard` does
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    print("READY", flush=True)
    for line in sys.stdin:
        order = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(order)
        print(pid, flush=True)


def _child(order: dict[str, object]) -> None:
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        fd = os.open(str(order["log"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the parent's stdin is the test's pipe, not ours
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in dict(order["env"]).items()})  # type: ignore[call-overload]
        os.chdir(str(order["cwd"]))
        sys.argv = ["liqguard", *[str(a) for a in order["argv"]]]  # type: ignore[attr-defined]
        from bot.cli import main as liqguard

        liqguard()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
