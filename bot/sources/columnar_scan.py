"""Vectorised parsing of unified-CSV blocks: pyarrow's multithreaded CSV reader, column checks.

Contents: scan_lines (= load_lines, then scan_table) -> Scan (the rows Arrow parsed and kept,
and the lines left over), cents_of.

pyarrow.csv.read_csv parses a block of whole lines in C++ on every core, with explicit column
types (ts_ms int64; venue and symbol dictionary-encoded strings; side a boolean, true for
exactly `long`, false for exactly `short`; price, quantity and notional_usd float64, empty as
null). Quoting is off and empty lines count as rows, so each
line is exactly one Arrow row or the block fails; a block Arrow refuses is bisected until the
bad lines are isolated. A row is kept only when the streaming row parser's fast path would take
it with the same values: ts_ms inside 2009..2100, side exactly `long` or `short`, venue and
symbol non-empty, not starting with a space and without quotes, price and quantity empty or in
[0, inf), notional in (0, 1e11). Every other line goes to the streaming row parser, which
accepts it or says why not. Arrow, like Python, rounds decimal text to the nearest float, so
cents are usd_to_cents(float(text)) exactly, which is what the streaming path computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from numpy.typing import NDArray

from bot.money import TIE_EPS, TIE_REL
from bot.sources.formats import UNIFIED_COLUMNS
from bot.sources.validate import MAX_TS_MS, MIN_TS_MS

ARROW_BLOCK_BYTES = 1 << 20  # Arrow's unit of parallel work inside a block
_MAX_USD = 1e11  # larger amounts (and inf, NaN) go to the row parser (see cents_of)
_BISECT_MIN = 16  # below this many lines a refused stretch goes line by line
_NAMES = pa.dictionary(pa.int32(), pa.string())
_TYPES = {
    "ts_ms": pa.int64(), "venue": _NAMES, "symbol": _NAMES, "side": pa.bool_(),
    "price": pa.float64(), "quantity": pa.float64(), "notional_usd": pa.float64(),
}  # fmt: skip
_PARSE = pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False)
# A side other than exactly long/short fails the block: bisection hands it to the row parser.
_CONVERT = pacsv.ConvertOptions(
    column_types=_TYPES,
    null_values=[""],
    true_values=["long"],
    false_values=["short"],
    strings_can_be_null=False,
    check_utf8=False,  # names are decoded once per distinct name instead (see _names)
)


@dataclass
class Scan:
    """Kept rows (line index in the block, columns) and the lines for the row parser."""

    lines: list[NDArray[np.intp] | range]  # a batch kept whole: its range (no array)
    ts_ms: list[NDArray[np.int64]]
    cents: list[NDArray[np.int64]]
    is_long: list[NDArray[np.bool_]]
    venue_codes: list[NDArray[np.int32]]  # codes into the part's names; the caller interns
    venue_names: list[list[str]]
    symbol_codes: list[NDArray[np.int32]]
    symbol_names: list[list[str]]
    left_over: list[int]
    n_lines: int = 0  # lines in the text scanned


def scan_lines(data: bytes | bytearray, start: int = 0, end: int | None = None) -> Scan:
    """Parse the whole lines of data[start:end] (each ending in a newline, no header)."""
    end = len(data) if end is None else end
    return scan_table(data, start, end, load_lines(data, start, end))


def load_lines(data: bytes | bytearray, start: int, end: int) -> pa.Table | None:
    """Arrow's table of the lines data[start:end], one row per line; None if it refuses them.

    Thread-safe and GIL-free for the most part: the reader runs it a block ahead."""
    if start >= end or not _no_lone_cr(data, start, end):
        return None
    return _load(pa.py_buffer(data)[start:end])


def scan_table(data: bytes | bytearray, start: int, end: int, table: pa.Table | None) -> Scan:
    """The Scan of data[start:end] given its load_lines: kept rows, the rest left over."""
    scan = Scan([], [], [], [], [], [], [], [], [])
    if start >= end:
        return scan
    if table is not None:  # no lone CR and a table: Arrow made exactly one row of each line
        scan.n_lines = table.num_rows
        _keep(table, 0, scan)
        return scan
    lines = bytes(data[start:end]).split(b"\n")[:-1]
    scan.n_lines = len(lines)
    half = len(lines) // 2  # the whole failed: straight to its halves
    _scan(lines[:half], 0, scan)
    _scan(lines[half:], half, scan)
    return scan


def _no_lone_cr(data: bytes | bytearray, start: int = 0, end: int | None = None) -> bool:
    """A CR alone ends a row for Arrow, not for the line reader: such text goes line by line."""
    return data.find(b"\r", start, end) < 0 or data.count(b"\r", start, end) == data.count(
        b"\r\n", start, end
    )


def _load(data: pa.Buffer) -> pa.Table | None:
    """The lines as an Arrow table (one row per line), or None if Arrow refuses them."""
    options = pacsv.ReadOptions(
        column_names=UNIFIED_COLUMNS, use_threads=True, block_size=ARROW_BLOCK_BYTES
    )
    try:
        return pacsv.read_csv(data, options, _PARSE, _CONVERT)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _scan(lines: list[bytes], offset: int, scan: Scan) -> None:
    """Parse a stretch Arrow refused as a whole: halves until the bad lines are isolated."""
    if len(lines) > _BISECT_MIN:
        data = b"\n".join(lines) + b"\n"
        table = _load(pa.py_buffer(data)) if _no_lone_cr(data) else None
        if table is not None:
            _keep(table, offset, scan)
            return
        half = len(lines) // 2
        _scan(lines[:half], offset, scan)
        _scan(lines[half:], offset + half, scan)
        return
    scan.left_over.extend(range(offset, offset + len(lines)))


def _keep(table: pa.Table, offset: int, scan: Scan) -> None:
    """Keep the plainly valid rows of each record batch; the others are left over.

    Clean batches (the usual case) cost a min and a max per numeric column: the row masks are
    built only for a batch with something to leave over. The kept columns are views of Arrow's
    buffers: the reader copies them once, into its own arrays."""
    # one dictionary per column for the whole table: its names are listed and checked once
    dictionaries: dict[int, tuple[pa.Array, list[str], bool]] = {}
    for batch in table.unify_dictionaries().to_batches():
        n = batch.num_rows
        if n == 0:
            continue
        ts_col, side_col, usd_col = batch.column(0), batch.column(3), batch.column(6)
        ts, usd = _values(ts_col, np.int64), _values(usd_col, np.float64)
        is_long = _bits(side_col)
        names = [_dictionary(batch.column(i), i, dictionaries) for i in (1, 2)]  # venue, symbol
        names_ok = all(dictionaries[i][2] for i in (1, 2))
        usd_lo, usd_hi = float(usd.min()), float(usd.max())
        clean = (
            not ts_col.null_count
            and not usd_col.null_count
            and not side_col.null_count
            and names_ok
            and MIN_TS_MS <= int(ts.min()) <= int(ts.max()) < MAX_TS_MS
            and 0 < usd_lo <= usd_hi < _MAX_USD  # NaN fails both
            and all(_plain_amounts(batch.column(i)) for i in (4, 5))
        )
        keep: slice | NDArray[np.intp] = slice(None)
        if not clean:
            ok = _row_checks(batch, ts, usd, names)
            where = np.arange(offset, offset + n)
            scan.left_over.extend(where[~ok].tolist())
            keep = np.flatnonzero(ok)
            scan.lines.append(where[keep])
        else:
            scan.lines.append(range(offset, offset + n))
        scan.ts_ms.append(ts[keep])
        scan.cents.append(cents_of(usd[keep], usd_hi if clean else None))
        scan.is_long.append(is_long[keep])
        scan.venue_codes.append(names[0][0][keep])
        scan.venue_names.append(names[0][1])
        scan.symbol_codes.append(names[1][0][keep])
        scan.symbol_names.append(names[1][1])
        offset += n


def _row_checks(
    batch: pa.RecordBatch,
    ts: NDArray[np.int64],
    usd: NDArray[np.float64],
    names: list[tuple[NDArray[np.int32], list[str]]],
) -> NDArray[np.bool_]:
    """Which rows of a batch are plainly valid, row by row (vectorised)."""
    ok = (ts >= MIN_TS_MS) & (ts < MAX_TS_MS) & (usd > 0) & (usd < _MAX_USD)
    for column in (batch.column(0), batch.column(3), batch.column(6)):
        valid = _validity(column)
        if valid is not None:  # an empty time, side or notional: the row parser says why not
            ok &= valid
    for i in (4, 5):  # price, quantity: empty or in [0, inf), as the row parser's fast path
        column = batch.column(i)
        if column.null_count < len(column):
            value = _values(column, np.float64)
            fine = (value >= 0) & (value < np.inf)
            valid = _validity(column)
            ok &= fine if valid is None else fine | ~valid
    for codes, distinct in names:  # checked once per distinct name
        ok &= np.array([_plain_name(x) for x in distinct] or [False])[codes]
    return ok


def _plain_amounts(column: pa.Array) -> bool:
    """Every price (or quantity) of a batch empty or in [0, inf): the batch's fast check."""
    if column.null_count == len(column):
        return True
    if column.null_count:
        return False  # some empty, some not: the row checks sort them out
    value = _values(column, np.float64)
    return float(value.min()) >= 0 and float(value.max()) < np.inf  # NaN fails both


def _values(column: pa.Array, dtype: type) -> NDArray:
    """The value buffer of a fixed-width Arrow array as numpy, without a copy (slots of nulls
    hold anything: see _validity). Array.to_numpy would import pandas: ~0.6 s of start-up."""
    width = np.dtype(dtype).itemsize
    buffer = column.buffers()[1]
    return np.frombuffer(buffer, dtype=dtype, count=len(column), offset=column.offset * width)


def _bits(column: pa.BooleanArray) -> NDArray[np.bool_]:
    """The values of a boolean Arrow array (bit-packed) as numpy booleans."""
    packed = np.frombuffer(column.buffers()[1], dtype=np.uint8)
    bits = np.unpackbits(packed, count=column.offset + len(column), bitorder="little")
    return bits[column.offset :].view(np.bool_)


def _validity(column: pa.Array) -> NDArray[np.bool_] | None:
    """Which rows hold a value (False: empty field); None when all do."""
    if not column.null_count:
        return None
    bits = np.unpackbits(np.frombuffer(column.buffers()[0], dtype=np.uint8), bitorder="little")
    return bits[column.offset : column.offset + len(column)].view(np.bool_)


def _dictionary(
    column: pa.DictionaryArray, i: int, seen: dict[int, tuple[pa.Array, list[str], bool]]
) -> tuple[NDArray[np.int32], list[str]]:
    """(code per row, distinct names) of a dictionary-encoded string column; the names list
    (and whether all are plain) is the same for every batch sharing column i's dictionary."""
    known = seen.get(i)
    if known is None or not column.dictionary.equals(known[0]):
        names = _names(column.dictionary)
        known = seen[i] = (column.dictionary, names, all(_plain_name(x) for x in names))
    return _values(column.indices, np.int32), known[1]


def _names(dictionary: pa.Array) -> list[str]:
    """The names of a dictionary; "" (never plain) for one that is not UTF-8, so that its rows
    go to the row parser, which says so. Arrow's own check is off: it looks at every row."""
    try:
        return cast("list[str]", dictionary.to_pylist())
    except UnicodeDecodeError:
        return [_decoded(raw) for raw in dictionary.cast(pa.binary()).to_pylist()]


def _decoded(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return ""


def _plain_name(name: str) -> bool:
    """A venue or symbol the row parser's fast path keeps as it is (quotes make it re-split)."""
    return bool(name) and name[0] != " " and '"' not in name


def cents_of(usd: NDArray[np.float64], largest: float | None = None) -> NDArray[np.int64]:
    """bot.money.usd_to_cents of each positive float below 1e11, vectorised (`largest`: the
    largest |usd|, when the caller knows it).

    Near a half cent, bot.money rounds the float's shortest decimal (its repr) half-to-even.
    Here: T = (2k+1)/200 is that tie and t = float(T); rounding to float is monotonic, so
    repr(v) > T iff v > t, and repr(v) == T iff v == t (below 1e11 a float's spacing is under
    2e-5, far finer than the 0.001 between candidate decimals, so repr(t) is T).
    So: up if v > t, down if v < t, to even if v == t.
    """
    scaled = usd * 100.0
    nearest = np.rint(scaled)
    out = nearest.astype(np.int64)  # half-to-even, as Python's round
    if not len(usd):
        return out
    # Candidates first, by the widest margin of the batch (3 passes); bot.money's own margin
    # (TIE_EPS + |x| TIE_REL) is then applied to those few only.
    if largest is None:
        largest = max(float(usd.max()), -float(usd.min()))
    widest = TIE_EPS + largest * 100.0 * TIE_REL
    distance = np.abs(np.subtract(scaled, nearest, out=nearest), out=nearest)
    near = np.flatnonzero(distance >= 0.5 - 2 * widest)
    if len(near):
        x = scaled[near]
        floor = np.floor(x)
        near = near[np.abs(x - floor - 0.5) <= TIE_EPS + np.abs(x) * TIE_REL]
    if len(near):
        k = np.floor(scaled[near])
        tie = (2.0 * k + 1.0) / 200.0
        v = usd[near]
        even = np.where(k % 2 == 0, k, k + 1)
        out[near] = np.where(v > tie, k + 1, np.where(v < tie, k, even)).astype(np.int64)
    return out
