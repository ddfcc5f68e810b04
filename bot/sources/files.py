"""Recorded liquidation tapes: open a file (plain or gzip), detect its format, stream events.

Contents: open_binary, TapeStats, Rejection, RecordedTape, open_tape, open_tapes.
Files are read line by line, never whole, so a tape larger than memory works. Bad rows are
rejected with a reason and a line number and counted; the run goes on. A file that is no
liquidation tape at all raises TapeError with one sentence.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from bot.events import Liquidation
from bot.sources.formats import (
    FORMATS,
    UnifiedRows,
    binance_csv_row,
    is_header,
    jsonl_line,
    sniff_format,
    split_csv,
)
from bot.sources.tardis import TardisRows
from bot.sources.validate import MalformedMessage, TapeError
from bot.sources.venues import ContractSize

__all__ = ["RecordedTape", "Rejection", "TapeError", "TapeStats", "open_binary", "open_tape"]

GZIP_MAGIC = b"\x1f\x8b"
KEPT_REJECTIONS = 20  # reasons kept for the summary; all are counted
SNIFF_BYTES = 65536  # enough of the first line to recognise it
GIVE_UP_AFTER = 100  # this many bad rows before any good one: not a tape


def open_binary(path: str | Path) -> tuple[BinaryIO, BinaryIO]:
    """(line reader, raw file) for `path`, gunzipping when the content starts with gzip magic."""
    try:
        raw: BinaryIO = open(path, "rb")  # noqa: SIM115 - the caller closes it
    except IsADirectoryError:
        raise TapeError(f"{path} is a directory, not a liquidation tape file.") from None
    except OSError as exc:
        raise TapeError(f"{path} cannot be read: {exc.strerror or exc}.") from None
    if not isinstance(raw, io.BufferedReader) or raw.peek(2)[:2] != GZIP_MAGIC:
        return raw, raw
    return gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    reason: str


@dataclass
class TapeStats:
    """What reading one tape found: events read, rows rejected (and the first reasons)."""

    path: str
    format: str
    lines: int = 0
    read: int = 0
    rejected: int = 0
    skipped: int = 0  # control frames (subscribe acks) and blank lines: nothing to count
    first_rejections: list[Rejection] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.first_rejections) < KEPT_REJECTIONS:
            self.first_rejections.append(Rejection(line, reason))


class RecordedTape:
    """An iterable of the Liquidation events of one file, in row order; iterate it once."""

    def __init__(
        self, path: str | Path, fmt: str, contract_size: ContractSize | None = None
    ) -> None:
        self.path = Path(path)
        self.format = fmt
        self.stats = TapeStats(path=str(path), format=fmt)
        self.size_bytes = self.path.stat().st_size
        self.bytes_done = 0  # compressed bytes consumed so far, for progress bars
        self._contract_size = contract_size

    def __iter__(self) -> Iterator[Liquidation]:
        reader, raw = open_binary(self.path)
        try:
            yield from self._events(reader, raw)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise TapeError(
                f"{self.path} is a damaged gzip file (after line {self.stats.lines}): {exc}."
            ) from None
        finally:
            reader.close()
            raw.close()

    def _events(self, reader: BinaryIO, raw: BinaryIO) -> Iterator[Liquidation]:
        stats = self.stats
        unified: UnifiedRows | None = UnifiedRows() if self.format == "unified" else None
        tardis = TardisRows() if self.format == "tardis" else None
        seen_data = False
        for number, blob in enumerate(reader, start=1):
            stats.lines = number
            if number % 4096 == 0:
                self.bytes_done = raw.tell()
            try:
                line = blob.decode("utf-8")
            except UnicodeDecodeError:
                self._reject(number, "not UTF-8 text")
                continue
            if not line.strip():
                stats.skipped += 1
                continue
            if not seen_data:
                seen_data = True
                if is_header(self.format, line):
                    if self.format == "unified":
                        try:
                            unified = UnifiedRows(split_csv(line.strip().lstrip("\ufeff")))
                        except MalformedMessage as exc:
                            raise TapeError(f"{self.path}: {exc}.") from None
                    continue
            try:
                if unified is not None:
                    events = [unified.parse(line)]
                elif tardis is not None:
                    if line.startswith("exchange,"):  # day files joined with cat/zcat
                        stats.skipped += 1
                        continue
                    events = [tardis.parse(line)]
                elif self.format == "binance-csv":
                    events = [binance_csv_row(line)]
                else:
                    errors: list[str] = []
                    events = jsonl_line(line, self._contract_size, errors)
                    for reason in errors:
                        self._reject(number, reason)
                    if not events and not errors:
                        stats.skipped += 1
            except MalformedMessage as exc:
                self._reject(number, str(exc))
                continue
            stats.read += len(events)
            yield from events
        self.bytes_done = self.size_bytes

    def _reject(self, line: int, reason: str) -> None:
        self.stats.reject(line, reason)
        if self.stats.read == 0 and self.stats.rejected >= GIVE_UP_AFTER:
            first = self.stats.first_rejections[0]
            raise TapeError(
                f"{self.path} is not a {self.format} liquidation tape: its first "
                f"{GIVE_UP_AFTER} rows were all rejected (line {first.line}: {first.reason})."
            )


def _first_line(path: Path) -> str | None:
    reader, raw = open_binary(path)
    try:
        while blob := reader.readline(SNIFF_BYTES):
            if blob.strip():
                return _sniff_text(path, blob)
        return None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise TapeError(f"{path} is a damaged gzip file: {exc}.") from None
    finally:
        reader.close()
        raw.close()


def _sniff_text(path: Path, blob: bytes) -> str:
    not_text = TapeError(f"{path} is not a text file, so not a liquidation tape.")
    if b"\x00" in blob:
        raise not_text
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(blob) == SNIFF_BYTES and exc.start >= len(blob) - 3:  # a character cut in two
            return blob[: exc.start].decode("utf-8")
        raise not_text from None


def open_tape(
    path: str | Path, fmt: str | None = None, contract_size: ContractSize | None = None
) -> RecordedTape:
    """A recorded tape; `fmt` (one of FORMATS) or detected from the first line."""
    p = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    first = _first_line(p)
    if first is None:
        raise TapeError(f"{p} is empty, so not a liquidation tape.")
    if fmt is None:
        fmt = sniff_format(first)
        if fmt is None:
            raise TapeError(
                f"{p} is not a liquidation tape: its first line is neither a unified CSV "
                "header (ts_ms,...,notional_usd), a Binance liquidation CSV row, a Tardis.dev "
                "liquidations header nor a JSON websocket message."
            )
    if fmt == "tardis" and "_trades_" in p.name:
        # Tardis's trades CSV has the very same header: only its file name tells them apart.
        raise TapeError(
            f"{p} is a Tardis.dev trades file (same columns as liquidations); download the "
            "`liquidations` data type instead (liqguard fetch tardis)."
        )
    return RecordedTape(p, fmt, contract_size)


def open_tapes(paths: list[Path], fmt: str | None = None) -> tuple[list[RecordedTape], bool]:
    """Tapes in the order of their first event (a tape with none last), and whether that
    differs from the order given: the detector reads one history forward in time, so a later
    file named first would make every event of the earlier one late and uncounted."""
    tapes = [open_tape(path, fmt) for path in paths]
    if len(tapes) < 2:
        return tapes, False
    firsts = [_first_ts_ms(t) for t in tapes]
    order = sorted(range(len(tapes)), key=lambda i: (firsts[i] is None, firsts[i] or 0, i))
    return [tapes[i] for i in order], order != list(range(len(tapes)))


def _first_ts_ms(tape: RecordedTape) -> int | None:
    """The time of a tape's first event, read from a fresh reader (the tape's counts untouched)."""
    first = next(iter(RecordedTape(tape.path, tape.format, tape._contract_size)), None)
    return None if first is None else first.ts_ms
