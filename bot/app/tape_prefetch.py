"""Tapes named on the `liqguard detect` command line, parsed while the command loads.

Contents: start(args), take(path, progress), cancel().

Loading the command (typer, the rule model, rich) is about a quarter of a second of Python on
one core; Arrow's parse runs on every core without the GIL. So the CLI calls start() first
thing: a thread imports the columnar reader and parses every argument that names a file big
enough to matter, while the main thread imports the rest. The detect run then take()s what was
parsed - the same read_unified_columns result, or the same exception - and reads anything else
itself. A file changed since (size or modification time) is read again; a run that goes the
streaming way cancel()s the parse. Only the standard library is imported here: the thread
imports the reader.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.detector.columns import TapeColumns
    from bot.sources.files import TapeStats

MIN_BYTES = 4 * 2**20  # smaller tapes parse in a few milliseconds: nothing to win
POLL_S = 0.1  # how often a waiting run reports the parse's progress
HEAD_START_S = 0.5  # the longest the command waits for the parse to begin before loading on
_FORMAT_FLAG = "--format"


class _Cancelled(Exception):
    """Raised inside the parse (from its progress callback) to stop it."""


_Key = tuple[str, int, int]  # real path, size, modification time (ns)
_Result = tuple["TapeColumns", "TapeStats"]


class _Run:
    """One start(): its thread's tapes, their futures and bytes done, its stop and begun flags."""

    def __init__(self, tapes: list[tuple[str, _Key]]) -> None:
        self.tapes = tapes
        self.futures: dict[_Key, Future[_Result]] = {key: Future() for _, key in tapes}
        self.done_bytes: dict[_Key, int] = {}
        self.stop = threading.Event()
        self.begun = threading.Event()  # the first block is in Arrow's hands, or it gave up

    def parse(self) -> None:
        try:
            from bot.sources.columnar import read_unified_columns  # here: off the main thread
        except BaseException as exc:  # every waiting take() raises it
            for future in self.futures.values():
                future.set_exception(exc)
            self.begun.set()
            return
        try:
            for path, key in self.tapes:
                self._parse_one(path, key, read_unified_columns)
        finally:
            self.begun.set()

    def _parse_one(self, path: str, key: _Key, read: Callable[..., _Result]) -> None:
        future = self.futures[key]
        if not future.set_running_or_notify_cancel():
            return

        def progress(done: int) -> None:
            if self.stop.is_set():
                raise _Cancelled
            self.done_bytes[key] = done
            self.begun.set()

        try:
            future.set_result(read(path, progress))
        except BaseException as exc:  # handed to take(), which raises it
            future.set_exception(exc)


_runs: list[_Run] = []


def _key(path: str | Path) -> _Key | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


def _tapes(args: list[str]) -> list[tuple[str, _Key]]:
    """The arguments naming regular files of MIN_BYTES or more; none if --format is not unified."""
    for i, arg in enumerate(args):
        value = arg.partition("=")[2] if arg.startswith(_FORMAT_FLAG + "=") else None
        if arg == _FORMAT_FLAG:
            value = args[i + 1] if i + 1 < len(args) else ""
        if value is not None and value != "unified":
            return []  # another reader was asked for: nothing to parse ahead
    out = []
    for arg in args:
        key = None if arg.startswith("-") else _key(arg)
        if key is not None and os.path.isfile(arg) and key[1] >= MIN_BYTES:
            out.append((arg, key))
    return out


def start(args: list[str]) -> None:
    """Begin parsing, in a daemon thread, the unified CSV tapes among `args` (the words after
    `detect`); an error or exit of the command is never held up by it."""
    tapes = _tapes(args)
    if not tapes:
        return
    run = _Run(tapes)
    _runs.append(run)
    threading.Thread(target=run.parse, name="tape-prefetch", daemon=True).start()
    # Both threads import Python under one lock: the reader's first, so that Arrow's threads
    # parse while the command's own imports run
    run.begun.wait(HEAD_START_S)


def take(path: str | Path, progress: Callable[[int], None] | None = None) -> _Result | None:
    """What read_unified_columns(path) returns (or raises), if start() began it on this very
    file; None otherwise. Waits for the parse, reporting its bytes done to `progress`."""
    key = _key(path)
    for run in _runs:
        if key is not None and any(k[0] == key[0] and k != key for k in run.futures):
            run.stop.set()  # the file changed since: this run's parse is stale
            run.futures.clear()
        future = run.futures.pop(key, None) if key is not None else None
        if future is None or future.cancelled():
            continue  # not this run's, or cancelled before its turn
        while True:
            try:
                return future.result(timeout=None if progress is None else POLL_S)
            except TimeoutError:
                if progress is not None and key is not None:
                    progress(run.done_bytes.get(key, 0))
            except _Cancelled:
                return None
    return None


def cancel() -> None:
    """Stop parsing ahead (the run reads its tapes another way); what was parsed is dropped."""
    for run in _runs:
        run.stop.set()
        for future in run.futures.values():
            future.cancel()
    _runs.clear()
