"""Columnar tapes: the parsed columns of a liquidation tape, and a vectorised unified-CSV reader.

Contents: TapeColumns (from_liquidations, concat), UnsupportedFastPath, read_unified_columns.

The reader parses a 16 MB block at a time with numpy's C reader and column-wise checks
(bot.sources.columnar_scan), never a Python loop per row. Any row those checks do not plainly accept
goes through the streaming source's own row parser (bot.sources.formats.UnifiedRows), so
acceptance, rejection reasons, line numbers and cents are the streaming path's, row for row.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bot.detector.columns import TapeColumns, cents_array, empty_column
from bot.money import usd_to_cents
from bot.sources.columnar_scan import scan_lines
from bot.sources.files import GIVE_UP_AFTER, TapeStats, open_binary, open_tape
from bot.sources.formats import UNIFIED_COLUMNS, UnifiedRows, is_header, split_csv
from bot.sources.validate import MalformedMessage, TapeError

BLOCK_BYTES = 16 * 2**20  # bytes parsed per numpy pass: bounds the temporaries
Progress = Callable[[int], None]  # bytes of the file consumed so far


class UnsupportedFastPath(ValueError):
    """The columnar reader does not handle this file; use the streaming sources instead."""


def read_unified_columns(
    path: str | Path, progress: Progress | None = None
) -> tuple[TapeColumns, TapeStats]:
    """Parse a unified CSV (plain or gzip) into columns, with the streaming source's stats.

    Raises UnsupportedFastPath for another format or a unified header in another column
    order, and TapeError (from the sources) for a file that is no tape at all.
    """
    tape = open_tape(path)  # sniffs the format and refuses non-tapes, like the streaming path
    if tape.format != "unified":
        raise UnsupportedFastPath(f"{path}: the columnar reader takes unified CSV only")
    reader = _BlockReader(tape.stats)
    stream, raw = open_binary(path)
    try:
        rest = b""
        while True:
            block = stream.read(BLOCK_BYTES)
            data = rest + block
            if not block:
                if data:
                    reader.parse(data + b"\n")
                break
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if cut:
                reader.parse(data[:cut])
            if progress is not None:
                progress(raw.tell())
    except (EOFError, OSError, zlib.error) as exc:
        raise TapeError(
            f"{path} is a damaged gzip file (after line {reader.lines}): {exc}."
        ) from None
    finally:
        stream.close()
        raw.close()
    return reader.columns(), tape.stats


class _BlockReader:
    """Parses blocks of whole lines; keeps interned names and the stats across blocks."""

    def __init__(self, stats: TapeStats) -> None:
        self.stats = stats
        self.lines = 0
        self._header_seen = False
        self._rows = UnifiedRows()
        self._symbols: dict[str, int] = {}
        self._venues: dict[str, int] = {}
        self._parts: list[tuple[NDArray, ...]] = []

    def columns(self) -> TapeColumns:
        self.stats.lines = self.lines
        if not self._parts:
            empty = (empty_column(np.int64), empty_column(np.int64), empty_column(np.bool_))
            self._parts.append((*empty, empty_column(np.int32), empty_column(np.int32)))
        ts, cents, longs, sym, ven = (np.concatenate(c) for c in zip(*self._parts, strict=True))
        return TapeColumns(
            ts_ms=ts,
            cents=cents,
            is_long=longs,
            symbol_codes=sym,
            symbols=tuple(self._symbols),
            venue_codes=ven,
            venues=tuple(self._venues),
        )

    def parse(self, data: bytes) -> None:
        """Parse a block of whole lines (ending with a newline)."""
        first_line = self.lines + 1
        self.lines += data.count(b"\n")
        if not self._header_seen:
            data, first_line = self._skip_header(data, first_line)
        if not data:
            return
        scan = scan_lines(data.decode("utf-8", "surrogateescape"))
        kept = np.concatenate(scan.lines) if scan.lines else np.zeros(0, np.intp)
        ts = np.concatenate(scan.ts_ms) if scan.lines else empty_column(np.int64)
        cents = np.concatenate(scan.cents) if scan.lines else empty_column(np.int64)
        longs = np.concatenate(scan.is_long) if scan.lines else empty_column(np.bool_)
        sym = self._intern(scan.symbol_codes, scan.symbol_names, self._symbols)
        ven = self._intern(scan.venue_codes, scan.venue_names, self._venues)
        if scan.left_over:
            order = np.argsort(kept, kind="stable")  # bisection may have split the block
            kept, ts, cents, longs = kept[order], ts[order], cents[order], longs[order]
            sym, ven = sym[order], ven[order]
            left = sorted(scan.left_over)
            buf = np.frombuffer(data, dtype=np.uint8)
            ends = np.flatnonzero(buf == 10)
            starts = np.concatenate([[0], ends[:-1] + 1])
            lines = [data[starts[i] : ends[i]] for i in left]
            extra = self._slow_rows(lines, [first_line + i for i in left], first_line + kept)
            if extra[0]:
                at = np.concatenate([kept, np.array(extra[0], dtype=np.intp) - first_line])
                order = np.argsort(at, kind="stable")
                ts = np.concatenate([ts, np.array(extra[1], dtype=np.int64)])[order]
                cents = np.concatenate([cents, cents_array(extra[2])])[order]
                longs = np.concatenate([longs, np.array(extra[3], dtype=np.bool_)])[order]
                sym = np.concatenate([sym, np.array(extra[4], dtype=np.int32)])[order]
                ven = np.concatenate([ven, np.array(extra[5], dtype=np.int32)])[order]
        self.stats.read += len(ts)
        self._parts.append((ts, cents, longs, sym, ven))

    def _skip_header(self, data: bytes, first_line: int) -> tuple[bytes, int]:
        """Skip blank lines and the header (checked for the usual column order)."""
        pos = 0
        while pos < len(data):
            end = data.index(b"\n", pos)
            text = data[pos:end].decode("utf-8", "replace")
            if not text.strip():
                self.stats.skipped += 1
                pos, first_line = end + 1, first_line + 1
                continue
            self._header_seen = True
            if is_header("unified", text):
                names = [f.strip().lower() for f in split_csv(text.strip().lstrip("\ufeff"))]
                if tuple(names) != UNIFIED_COLUMNS:
                    raise UnsupportedFastPath(
                        "the columnar reader takes the unified columns in their usual order"
                    )
                pos, first_line = end + 1, first_line + 1
            break
        return data[pos:], first_line

    @staticmethod
    def _intern(
        codes: list[NDArray[np.intp]], names: list[list[str]], table: dict[str, int]
    ) -> NDArray[np.int32]:
        """Global codes of the names of a block's kept rows."""
        out = []
        for part_codes, part_names in zip(codes, names, strict=True):
            found = [table.setdefault(name, len(table)) for name in part_names]
            out.append(np.array(found or [0], dtype=np.int32)[part_codes])
        return np.concatenate(out) if out else empty_column(np.int32)

    def _slow_rows(
        self, lines: list[bytes], numbers: list[int], fast_numbers: NDArray
    ) -> tuple[list[int], list[int], list[int], list[bool], list[int], list[int]]:
        """Lines the numpy pass left: the streaming row parser decides, with its reasons."""
        out: tuple[list[int], list[int], list[int], list[bool], list[int], list[int]] = (
            [], [], [], [], [], [])  # fmt: skip
        stats = self.stats
        for blob, number in zip(lines, numbers, strict=True):
            try:
                line = blob.decode("utf-8")
            except UnicodeDecodeError:
                self._reject(number, "not UTF-8 text", fast_numbers, len(out[0]))
                continue
            if not line.strip():
                stats.skipped += 1
                continue
            try:
                liq = self._rows.parse(line)
            except MalformedMessage as exc:
                self._reject(number, str(exc), fast_numbers, len(out[0]))
                continue
            out[0].append(number)
            out[1].append(liq.ts_ms)
            out[2].append(usd_to_cents(liq.notional_usd))
            out[3].append(liq.side == "long")
            out[4].append(self._symbols.setdefault(liq.symbol, len(self._symbols)))
            out[5].append(self._venues.setdefault(liq.venue, len(self._venues)))
        return out

    def _reject(self, number: int, reason: str, fast_numbers: NDArray, slow_read: int) -> None:
        stats = self.stats
        stats.reject(number, reason)
        read_before = stats.read + slow_read + int(np.searchsorted(fast_numbers, number))
        if read_before == 0 and stats.rejected >= GIVE_UP_AFTER:
            first = stats.first_rejections[0]
            raise TapeError(
                f"{stats.path} is not a {stats.format} liquidation tape: its first "
                f"{GIVE_UP_AFTER} rows were all rejected (line {first.line}: {first.reason})."
            )
