"""The vectorised unified-CSV reader: a tape file into bot.detector.columns.TapeColumns.

Contents: UnsupportedFastPath, read_unified_columns.

The reader streams the file in blocks of whole lines (8 MB, so a tape larger than memory
works) and parses each with pyarrow's multithreaded CSV reader and column-wise checks
(bot.sources.columnar_scan), the next block in a worker while this thread checks the current
one, never a Python loop per row; it keeps only fixed-width arrays of the columns the
detector needs. Any row those checks do not plainly accept goes through the
streaming source's own row parser (bot.sources.formats.UnifiedRows), so acceptance, rejection
reasons, line numbers and cents are the streaming path's, row for row.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from bot.detector.columns import TapeColumns, cents_array, empty_column
from bot.money import usd_to_cents
from bot.sources.columnar_scan import load_lines, scan_table
from bot.sources.files import GIVE_UP_AFTER, TapeStats, open_binary, open_tape
from bot.sources.formats import UNIFIED_COLUMNS, UnifiedRows, is_header, split_csv
from bot.sources.validate import MalformedMessage, TapeError

BLOCK_BYTES = 8 * 2**20  # bytes parsed per Arrow pass: bounds the temporaries (two in flight)
_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
_PARSE = object()  # parse(): no table given, load the lines here
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
    _lean_memory()
    reader = _BlockReader(tape.stats)
    stream, raw = open_binary(path)
    # Arrow parses the next piece in a worker (it releases the GIL) while this thread checks
    # and interns the current one: both cores stay busy.
    pool = ThreadPoolExecutor(1, thread_name_prefix="arrow-csv")
    try:
        pending: tuple[bytes, int, int, Future[pa.Table | None]] | None = None
        for data, start, end in _pieces(stream, raw, progress):
            if not reader.header_seen:
                start = reader.skip_header(data, start, end)
            parsed = pool.submit(load_lines, data, start, end)
            if pending is not None:
                reader.parse(*pending[:3], table=pending[3].result())
            pending = (data, start, end, parsed)
        if pending is not None:
            reader.parse(*pending[:3], table=pending[3].result())
    except (EOFError, OSError, zlib.error) as exc:
        raise TapeError(
            f"{path} is a damaged gzip file (after line {reader.lines}): {exc}."
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        stream.close()
        raw.close()
    return reader.columns(), tape.stats


@functools.cache
def _lean_memory() -> None:
    """Give freed block buffers back to the system, once per process: ~90 MB less peak RSS.

    glibc raises its mmap threshold after the first large free, so later 8 MB blocks come from
    the heap and stay mapped; a fixed threshold keeps them mmapped. Arrow's own allocator
    (mimalloc) keeps its pages too: the system allocator returns them.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the defaults stay
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 256 * 1024)
    pa.set_memory_pool(pa.system_memory_pool())


def _pieces(
    stream: BinaryIO, raw: BinaryIO, progress: Progress | None
) -> Iterator[tuple[bytes, int, int]]:
    """(data, start, end): whole lines data[start:end], by blocks, without copying a block."""
    rest = b""  # the start of a line cut by the block boundary
    while block := stream.read(BLOCK_BYTES):
        first = block.find(b"\n") + 1
        if not first:
            rest += block
            continue
        start = 0
        if rest:
            line = rest + block[:first]
            yield line, 0, len(line)
            rest, start = b"", first
        cut = block.rfind(b"\n") + 1
        if cut > start:
            yield block, start, cut
        rest = block[cut:]
        if progress is not None:
            progress(raw.tell())
    if rest:
        yield rest + b"\n", 0, len(rest) + 1


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
        parts, self._parts = self._parts, []
        if not parts:
            empty = (empty_column(np.int64), empty_column(np.int64), empty_column(np.bool_))
            parts.append((*empty, empty_column(np.int32), empty_column(np.int32)))
        out = []
        for k in range(5):  # column by column, each block's copy freed as soon as it is joined
            out.append(np.concatenate([p[k] for p in parts]))
            parts = [(*p[:k], empty_column(np.int64), *p[k + 1 :]) for p in parts]
        ts, cents, longs, sym, ven = out
        return TapeColumns(
            ts_ms=ts,
            cents=cents,
            is_long=longs,
            symbol_codes=sym,
            symbols=tuple(self._symbols),
            venue_codes=ven,
            venues=tuple(self._venues),
        )

    @property
    def header_seen(self) -> bool:
        return self._header_seen

    def parse(
        self, data: bytes, start: int = 0, end: int | None = None, table: object = _PARSE
    ) -> None:
        """Parse the whole lines of data[start:end] (ending with a newline); `table`: their
        load_lines, when already done."""
        end = len(data) if end is None else end
        if not self._header_seen:
            start = self.skip_header(data, start, end)
        first_line = self.lines + 1
        if table is _PARSE:
            table = load_lines(data, start, end)
        scan = scan_table(data, start, end, cast("pa.Table | None", table))
        self.lines += scan.n_lines
        if not scan.n_lines:
            return
        sym_parts = self._intern(scan.symbol_codes, scan.symbol_names, self._symbols)
        ven_parts = self._intern(scan.venue_codes, scan.venue_names, self._venues)
        if not scan.left_over:  # the usual block: joined as one part (large arrays are
            # mmapped, so freeing them later gives the memory back; batch-sized ones would not)
            block: list[list[NDArray]] = [scan.ts_ms, scan.cents, scan.is_long]
            part = tuple(np.concatenate(p) for p in [*block, sym_parts, ven_parts])
            self.stats.read += len(part[0])
            self._parts.append(part)
            return
        kept = np.concatenate(scan.lines) if scan.lines else np.zeros(0, np.intp)
        ts = np.concatenate(scan.ts_ms) if scan.lines else empty_column(np.int64)
        cents = np.concatenate(scan.cents) if scan.lines else empty_column(np.int64)
        longs = np.concatenate(scan.is_long) if scan.lines else empty_column(np.bool_)
        sym = np.concatenate(sym_parts) if sym_parts else empty_column(np.int32)
        ven = np.concatenate(ven_parts) if ven_parts else empty_column(np.int32)
        if scan.left_over:
            order = np.argsort(kept, kind="stable")  # bisection may have split the block
            kept, ts, cents, longs = kept[order], ts[order], cents[order], longs[order]
            sym, ven = sym[order], ven[order]
            left = sorted(scan.left_over)
            text = data[start:end].split(b"\n")
            lines = [text[i] for i in left]
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

    def skip_header(self, data: bytes, pos: int, stop: int) -> int:
        """Skip blank lines and the header (checked for the usual column order); where the
        rows start."""
        while pos < stop:
            end = data.index(b"\n", pos)
            text = data[pos:end].decode("utf-8", "replace")
            if not text.strip():
                self.stats.skipped += 1
                self.lines += 1
                pos = end + 1
                continue
            self._header_seen = True
            if is_header("unified", text):
                names = [f.strip().lower() for f in split_csv(text.strip().lstrip("\ufeff"))]
                if tuple(names) != UNIFIED_COLUMNS:
                    raise UnsupportedFastPath(
                        "the columnar reader takes the unified columns in their usual order"
                    )
                self.lines += 1
                pos = end + 1
            break
        return pos

    @staticmethod
    def _intern(
        codes: list[NDArray[np.int32]], names: list[list[str]], table: dict[str, int]
    ) -> list[NDArray[np.int32]]:
        """Global codes of the names of each batch's kept rows."""
        out = []
        for part_codes, part_names in zip(codes, names, strict=True):
            found = [table.setdefault(name, len(table)) for name in part_names]
            out.append(np.array(found or [0], dtype=np.int32)[part_codes])
        return out

    def _slow_rows(
        self, lines: list[bytes], numbers: list[int], fast_numbers: NDArray
    ) -> tuple[list[int], list[int], list[int], list[bool], list[int], list[int]]:
        """Lines the Arrow pass left: the streaming row parser decides, with its reasons."""
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
