"""The vectorised unified-CSV reader: a tape file into bot.detector.columns.TapeColumns.

Contents: UnsupportedFastPath, read_unified_columns.

The reader streams the file in blocks of whole lines (8 MB, so a tape larger than memory
works) and parses each with pyarrow's multithreaded CSV reader and column-wise checks
(bot.sources.columnar_scan), the next block in a worker while this thread checks the current
one, never a Python loop per row; it keeps only fixed-width arrays of the columns the
detector needs, each value copied once into arrays grown in place. Any row those checks do
not plainly accept goes through the streaming source's own row parser
(bot.sources.formats.UnifiedRows), so acceptance, rejection reasons, line numbers and cents
are the streaming path's, row for row.
"""

from __future__ import annotations

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
from bot.sources.columnar_scan import Scan, load_lines, scan_table
from bot.sources.files import GIVE_UP_AFTER, TapeStats, open_binary, open_tape
from bot.sources.formats import UNIFIED_COLUMNS, UnifiedRows, is_header, split_csv
from bot.sources.validate import MalformedMessage, TapeError

BLOCK_BYTES = 8 * 2**20  # bytes parsed per Arrow pass: bounds the temporaries (two in flight)
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
    stream, raw = open_binary(path)
    reader = _BlockReader(tape.stats, Path(path).stat().st_size if stream is raw else 0)
    # Arrow parses the next piece in a worker (it releases the GIL) while this thread checks
    # and interns the current one: both cores stay busy.
    pool = ThreadPoolExecutor(1, thread_name_prefix="arrow-csv")
    try:
        pending: tuple[bytearray, int, int, Future[pa.Table | None]] | None = None
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
    """Give Arrow's freed memory back to the system, once per process: Arrow's own allocator
    (mimalloc) keeps its pages; the system allocator (glibc) returns them and reuses them.

    glibc's mmap threshold is left alone: fixed low, every block's Arrow buffers were fresh
    mappings, 100,000 page faults a run (a fifth of its system time) for 15 MB less peak RSS.
    """
    pa.set_memory_pool(pa.system_memory_pool())


def _pieces(
    stream: BinaryIO, raw: BinaryIO, progress: Progress | None
) -> Iterator[tuple[bytearray, int, int]]:
    """(data, start, end): whole lines data[start:end], by blocks, without copying a block.

    Blocks are read into two buffers in turn, not a new one each time: a fresh 8 MB buffer is
    fresh pages the kernel must zero (a tenth of the run's CPU). A piece's buffer is refilled
    two pieces later, when its parse (a piece ahead) and its checks are done. The line cut by
    a block's end is moved to the front of the next buffer, so every piece is a whole block."""
    buffers = [bytearray(BLOCK_BYTES), bytearray(BLOCK_BYTES)]
    turn, rest = 0, b""  # rest: the start of a line cut by the block boundary
    while True:
        buffer = buffers[turn]
        if len(rest) * 2 > len(buffer):  # a line longer than half a block: room for more
            buffer = buffers[turn] = bytearray(len(rest) * 2)
        buffer[: len(rest)] = rest
        size = len(rest) + _read_into(stream, memoryview(buffer)[len(rest) :])
        if size == len(rest):
            break
        cut = buffer.rfind(b"\n", 0, size) + 1
        rest = bytes(buffer[cut:size])
        if cut:  # the other buffer next: this one is in use until two pieces later
            turn ^= 1
            yield buffer, 0, cut
        if progress is not None:
            progress(raw.tell())
    if rest:
        yield bytearray(rest + b"\n"), 0, len(rest) + 1


def _index(lines: NDArray[np.intp] | range) -> NDArray[np.intp]:
    return np.arange(lines.start, lines.stop) if isinstance(lines, range) else lines


def _read_into(stream: BinaryIO, view: memoryview) -> int:
    """Fill `view` from the stream as far as it goes (a gzip stream may return less)."""
    done = 0
    while done < len(view):
        got = stream.readinto(view[done:])  # type: ignore[attr-defined]
        if not got:
            break
        done += got
    return done


class _Interned:
    """Names to global codes, across blocks: a batch's names list (which the batches of a block
    share) mapped once to the global codes of its names."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self._last: tuple[list[str], NDArray[np.int32]] | None = None

    def mapping(self, names: list[str]) -> NDArray[np.int32]:
        """Global code of each of `names` (index it with a batch's codes)."""
        if self._last is None or self._last[0] is not names:
            table = self.codes
            found = [table.setdefault(name, len(table)) for name in names]
            self._last = (names, np.array(found or [0], np.int32))
        return self._last[1]

    def __call__(self, codes: NDArray[np.int32], names: list[str]) -> NDArray[np.int32]:
        return self.mapping(names)[codes]

    def setdefault(self, name: str) -> int:
        return self.codes.setdefault(name, len(self.codes))


class _Kept:
    """The kept rows so far, in fixed-width arrays grown in place (realloc, not a copy of the
    whole), so each value is copied once from Arrow's buffers. Cents beyond int64 (rare:
    only the row parser makes them) wait aside until the end."""

    _KINDS = (np.int64, np.int64, np.bool_, np.int32, np.int32)  # ts, cents, long, codes

    def __init__(self) -> None:
        self.n = 0
        self._arrays = [np.zeros(0, dt) for dt in self._KINDS]
        self._wide: dict[int, int] = {}  # row: cents beyond int64

    def reserve(self, rows: int) -> None:
        """Room for at least `rows` rows in all."""
        if rows <= len(self._arrays[0]):
            return
        if not self.n:  # nothing to keep: fresh arrays, not a resize that writes zeros first
            self._arrays = [np.empty(rows, dt) for dt in self._KINDS]
            return
        for a in self._arrays:  # no view of them lives across calls: resizing is safe
            a.resize(rows, refcheck=False)

    def add(
        self,
        ts: NDArray,
        cents: NDArray,
        longs: NDArray,
        sym: NDArray,
        ven: NDArray,
        maps: tuple[NDArray, NDArray] | None = None,
    ) -> None:
        """Append rows. `maps`: the global code of each of a block's own symbol and venue
        codes in `sym` and `ven`, mapped straight into the kept arrays (no temporary)."""
        n, size = self.n, len(ts)
        if n + size > len(self._arrays[0]):
            self.reserve(max(n + size, int(len(self._arrays[0]) * 1.5)))
        if cents.dtype == object:  # beyond int64 cents: kept apart, 0 in the array for now
            wide = {i: int(c) for i, c in enumerate(cents.tolist()) if not -(2**63) <= c < 2**63}
            self._wide.update({n + i: c for i, c in wide.items()})
            cents = np.array([0 if i in wide else c for i, c in enumerate(cents)], np.int64)
        for out, part in zip(self._arrays[:3], (ts, cents, longs), strict=True):
            out[n : n + size] = part
        for k, (out, codes) in enumerate(zip(self._arrays[3:], (sym, ven), strict=True)):
            if maps is None:
                out[n : n + size] = codes
            else:
                np.take(maps[k], codes, out=out[n : n + size])
        self.n += size

    def columns(self) -> tuple[NDArray, ...]:
        """The five columns, trimmed; this object is empty afterwards."""
        arrays, self._arrays = self._arrays, []
        for a in arrays:
            a.resize(self.n, refcheck=False)
        if self._wide:
            cents = arrays[1].astype(object)
            for row, value in self._wide.items():
                cents[row] = value
            arrays[1] = cents
        return tuple(arrays)


class _BlockReader:
    """Parses blocks of whole lines; keeps interned names and the stats across blocks."""

    def __init__(self, stats: TapeStats, size_bytes: int = 0) -> None:
        self.stats = stats
        self.lines = 0
        self._header_seen = False
        self._rows = UnifiedRows()
        self._symbols = _Interned()
        self._venues = _Interned()
        self._kept = _Kept()
        self._size_bytes = size_bytes  # of a plain file: sizes the arrays from the first block

    def columns(self) -> TapeColumns:
        self.stats.lines = self.lines
        ts, cents, longs, sym, ven = self._kept.columns()
        return TapeColumns(
            ts_ms=ts,
            cents=cents,
            is_long=longs,
            symbol_codes=sym,
            symbols=tuple(self._symbols.codes),
            venue_codes=ven,
            venues=tuple(self._venues.codes),
        )

    @property
    def header_seen(self) -> bool:
        return self._header_seen

    def parse(
        self,
        data: bytes | bytearray,
        start: int = 0,
        end: int | None = None,
        table: object = _PARSE,
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
        if self._size_bytes and not self._kept.n and end > start:  # rows per byte of this block
            self._kept.reserve(int(self._size_bytes * 1.02 * scan.n_lines / (end - start)) + 64)
        if not scan.left_over:  # the usual block: each batch copied once, into the kept arrays
            parts = zip(scan.ts_ms, scan.cents, scan.is_long, strict=True)
            for k, (ts, cents, longs) in enumerate(parts):
                maps = (
                    self._symbols.mapping(scan.symbol_names[k]),
                    self._venues.mapping(scan.venue_names[k]),
                )
                self._kept.add(ts, cents, longs, scan.symbol_codes[k], scan.venue_codes[k], maps)
            self.stats.read += sum(len(t) for t in scan.ts_ms)
            return
        kept = (
            np.concatenate([_index(x) for x in scan.lines]) if scan.lines else np.zeros(0, np.intp)
        )
        ts = np.concatenate(scan.ts_ms) if scan.lines else empty_column(np.int64)
        cents = np.concatenate(scan.cents) if scan.lines else empty_column(np.int64)
        longs = np.concatenate(scan.is_long) if scan.lines else empty_column(np.bool_)
        codes = [self._codes(scan, k) for k in range(len(scan.lines))]
        sym = np.concatenate([c[0] for c in codes]) if codes else empty_column(np.int32)
        ven = np.concatenate([c[1] for c in codes]) if codes else empty_column(np.int32)
        order = np.argsort(kept, kind="stable")  # bisection may have split the block
        kept, ts, cents, longs = kept[order], ts[order], cents[order], longs[order]
        sym, ven = sym[order], ven[order]
        left = sorted(scan.left_over)
        text = data[start:end].split(b"\n")
        lines = [bytes(text[i]) for i in left]
        extra = self._slow_rows(lines, [first_line + i for i in left], first_line + kept)
        if extra[0]:
            at = np.concatenate([kept, np.array(extra[0], dtype=np.intp) - first_line])
            order = np.argsort(at, kind="stable")
            ts = np.concatenate([ts, np.array(extra[1], dtype=np.int64)])[order]
            wide = cents_array(extra[2])
            cents = np.concatenate([cents.astype(wide.dtype), wide])[order]
            longs = np.concatenate([longs, np.array(extra[3], dtype=np.bool_)])[order]
            sym = np.concatenate([sym, np.array(extra[4], dtype=np.int32)])[order]
            ven = np.concatenate([ven, np.array(extra[5], dtype=np.int32)])[order]
        self.stats.read += len(ts)
        self._kept.add(ts, cents, longs, sym, ven)

    def _codes(self, scan: Scan, k: int) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
        """Global (symbol, venue) codes of batch k's kept rows."""
        return (
            self._symbols(scan.symbol_codes[k], scan.symbol_names[k]),
            self._venues(scan.venue_codes[k], scan.venue_names[k]),
        )

    def skip_header(self, data: bytes | bytearray, pos: int, stop: int) -> int:
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
            out[4].append(self._symbols.setdefault(liq.symbol))
            out[5].append(self._venues.setdefault(liq.venue))
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
