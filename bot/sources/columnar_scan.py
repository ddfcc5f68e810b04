"""Vectorised parsing of unified-CSV text blocks: numpy's C reader, then column-wise checks.

Contents: scan_lines -> Scan (the rows numpy parsed and kept, and the lines left over).

numpy.loadtxt parses a whole block in C. A row is kept only when it is plainly valid: ts_ms
inside 2009..2100, side exactly `long` or `short`, venue and symbol of printable ASCII without
quotes (at most 31 bytes), price and quantity empty or plain decimals, and a finite positive
notional. Every other line - and every line of a stretch numpy refuses, found by bisection -
is left over for the streaming row parser, which accepts it or says why not.
Cents are usd_to_cents(float(text)) exactly, which is what the streaming path computes: the
float is correctly rounded by numpy as by Python, and rounding near a half cent is left to
bot.money itself.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bot.money import TIE_EPS, TIE_REL
from bot.sources.validate import MAX_TS_MS, MIN_TS_MS

NAME_BYTES = 24  # venue/symbol field width; a name filling it may be cut: row parser
NUMBER_BYTES = 16  # price/quantity field width, same rule
_DTYPE = np.dtype([
    ("ts", "i8"), ("venue", f"S{NAME_BYTES}"), ("symbol", f"S{NAME_BYTES}"), ("side", "S6"),
    ("price", f"S{NUMBER_BYTES}"), ("qty", f"S{NUMBER_BYTES}"), ("usd", "f8"),
])  # fmt: skip
_MAX_USD = 1e11  # larger amounts (and inf, NaN) go to the row parser (see cents_of)
_BISECT_MIN = 16  # below this many lines a refused stretch goes line by line
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)
_LOW7, _HIGH_BITS = np.uint64(0x7F7F7F7F7F7F7F7F), np.uint64(0x8080808080808080)
_ASCII_ZERO, _DOTS = np.uint64(0x3030303030303030), np.uint64(0x2E2E2E2E2E2E2E2E)
_HIGH_NIBBLES, _LOW_NIBBLES = np.uint64(0xF0F0F0F0F0F0F0F0), np.uint64(0x0F0F0F0F0F0F0F0F)
_SIXES, _SIXTEENS = np.uint64(0x0606060606060606), np.uint64(0x1010101010101010)
_NAME_BAD = np.ones(256, dtype=np.bool_)  # printable ASCII but quotes; 0 is the padding
_NAME_BAD[33:127] = False
_NAME_BAD[ord('"')] = True
_NAME_BAD[0] = False


@dataclass
class Scan:
    """Kept rows (line index in the block, columns) and the lines for the row parser."""

    lines: list[NDArray[np.intp]]
    ts_ms: list[NDArray[np.int64]]
    cents: list[NDArray[np.int64]]
    is_long: list[NDArray[np.bool_]]
    venue_codes: list[NDArray[np.intp]]  # codes into the part's names; the caller interns
    venue_names: list[list[str]]
    symbol_codes: list[NDArray[np.intp]]
    symbol_names: list[list[str]]
    left_over: list[int]


def scan_lines(text: str) -> Scan:
    """Parse the lines of `text` (whole lines, no header) into kept rows and left-over lines."""
    scan = Scan([], [], [], [], [], [], [], [], [])
    if "\x00" in text:  # a NUL would vanish in numpy's fixed-width bytes: all by row parser
        scan.left_over.extend(range(text.count("\n") + (not text.endswith("\n"))))
        return scan
    n_lines = text.count("\n") + (not text.endswith("\n"))
    try:  # the common case: the whole block in one C call, no list of lines
        table = _load(io.StringIO(text))
    except ValueError:
        _scan(_split(text), 0, scan)
        return scan
    if len(table) == n_lines:
        _keep(table, np.arange(n_lines), scan)
    else:
        _keep(table, _non_empty(_split(text), 0), scan)
    return scan


def _load(source: io.StringIO | list[str]) -> NDArray[np.void]:
    return np.loadtxt(source, dtype=_DTYPE, delimiter=",", comments=None, quotechar=None, ndmin=1)


def _split(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _non_empty(lines: list[str], offset: int) -> NDArray[np.intp]:
    """Line numbers of numpy's rows: it skips empty lines."""
    return offset + np.array([i for i, x in enumerate(lines) if x and x != "\r"], np.intp)


def _scan(lines: list[str], offset: int, scan: Scan) -> None:
    """Parse a stretch numpy refused as a whole: halves until the bad lines are isolated."""
    try:
        table = _load(lines)
    except ValueError:
        if len(lines) <= _BISECT_MIN:
            scan.left_over.extend(range(offset, offset + len(lines)))
            return
        half = len(lines) // 2
        _scan(lines[:half], offset, scan)
        _scan(lines[half:], offset + half, scan)
        return
    if len(table) == len(lines):
        _keep(table, np.arange(offset, offset + len(lines)), scan)
    else:
        _keep(table, _non_empty(lines, offset), scan)


def _keep(table: NDArray[np.void], where: NDArray[np.intp], scan: Scan) -> None:
    ts, usd = table["ts"], table["usd"]
    is_long = table["side"] == b"long"
    ok = (ts >= MIN_TS_MS) & (ts < MAX_TS_MS) & (usd > 0) & (usd < _MAX_USD)
    ok &= is_long | (table["side"] == b"short")
    names = {}
    for field in ("venue", "symbol"):  # checked once per distinct name
        codes, first = codes_of(table[field])
        distinct = table[field][first]
        ok &= _plain_name(distinct.view(np.uint8).reshape(len(first), NAME_BYTES))[codes]
        names[field] = codes, [x.decode("latin-1") for x in distinct.tolist()]
    for field in ("price", "qty"):
        ok &= _plain_decimal_or_empty(table[field])
    scan.left_over.extend(where[~ok].tolist())
    keep = np.flatnonzero(ok)
    scan.lines.append(where[keep])
    scan.ts_ms.append(ts[keep])
    scan.cents.append(cents_of(usd[keep]))
    scan.is_long.append(is_long[keep])
    scan.venue_codes.append(names["venue"][0][keep])
    scan.venue_names.append(names["venue"][1])
    scan.symbol_codes.append(names["symbol"][0][keep])
    scan.symbol_names.append(names["symbol"][1])


def cents_of(usd: NDArray[np.float64]) -> NDArray[np.int64]:
    """bot.money.usd_to_cents of each positive float below 1e11, vectorised.

    Near a half cent, bot.money rounds the float's shortest decimal (its repr) half-to-even.
    Here: T = (2k+1)/200 is that tie and t = float(T); rounding to float is monotonic, so
    repr(v) > T iff v > t, and repr(v) == T iff v == t (below 1e11 a float's spacing is under
    2e-5, far finer than the 0.001 between candidate decimals, so repr(t) is T).
    So: up if v > t, down if v < t, to even if v == t.
    """
    scaled = usd * 100.0
    floor = np.floor(scaled)
    out = np.rint(scaled).astype(np.int64)  # half-to-even, as Python's round
    margin = TIE_EPS + np.abs(scaled) * TIE_REL  # the same margin as bot.money
    near = np.flatnonzero(np.abs(scaled - floor - 0.5) <= margin)
    if len(near):
        k = floor[near]
        tie = (2.0 * k + 1.0) / 200.0
        v = usd[near]
        even = np.where(k % 2 == 0, k, k + 1)
        out[near] = np.where(v > tie, k + 1, np.where(v < tie, k, even)).astype(np.int64)
    return out


def _plain_name(m: NDArray[np.uint8]) -> NDArray[np.bool_]:
    return ~_NAME_BAD[m].any(axis=1) & (m[:, 0] != 0) & (m[:, -1] == 0)


def _zero_bytes(v: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """0x80 in each byte of v that is zero, exactly (no borrow between bytes)."""
    return ~(((v & _LOW7) + _LOW7) | v | _LOW7)


def _plain_decimal_or_empty(values: NDArray[np.void]) -> NDArray[np.bool_]:
    """Empty, or digits with at most one dot: 8 bytes at a time (SWAR on uint64 words)."""
    packed = np.ascontiguousarray(values)
    words = packed.view(np.uint64).reshape(len(values), -1)
    dots = np.zeros(len(values), dtype=np.uint8)
    has_digit = np.zeros(len(values), dtype=np.bool_)
    ok = np.ones(len(values), dtype=np.bool_)
    for w in range(words.shape[1]):
        v = words[:, w]
        t = v ^ _ASCII_ZERO  # digits become 0..9
        not_digit = (t & _HIGH_NIBBLES) | (((t & _LOW_NIBBLES) + _SIXES) & _SIXTEENS)
        digit = _zero_bytes(not_digit)
        dot = _zero_bytes(v ^ _DOTS)
        ok &= (digit | dot | _zero_bytes(v)) == _HIGH_BITS
        dots += np.bitwise_count(dot).astype(np.uint8)
        has_digit |= digit != 0
    last = packed.view(np.uint8).reshape(len(values), -1)[:, -1]
    return ok & (dots <= 1) & (last == 0) & (has_digit | (words[:, 0] == 0))


def codes_of(names: NDArray[np.void]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(code per row, index of one row per code) of fixed-width names, exact."""
    if len(names) == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    words = np.ascontiguousarray(names).view(np.uint64).reshape(len(names), -1)
    key = words[:, 0].copy()
    for w in range(1, words.shape[1]):
        key = (key * _HASH_MUL) ^ words[:, w]
    _, first, codes = np.unique(key, return_index=True, return_inverse=True)
    codes = codes.reshape(-1)
    if not np.array_equal(words, words[first][codes]):  # a hash collision: exact unique
        _, first, codes = np.unique(words, axis=0, return_index=True, return_inverse=True)
        codes = codes.reshape(-1)
    return codes, first
