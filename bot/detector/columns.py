"""A tape as parallel fixed-width columns: what the columnar detector reads (no file I/O here;
bot.sources.columnar fills them from files)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from bot.money import usd_to_cents

if TYPE_CHECKING:
    from bot.events import Liquidation


@dataclass(frozen=True)
class TapeColumns:
    """A tape as parallel columns, in arrival order. Names are interned: codes index them."""

    ts_ms: NDArray[np.int64]
    cents: NDArray[np.int64]  # int64; object (Python ints) if a notional exceeds int64 cents
    is_long: NDArray[np.bool_]
    symbol_codes: NDArray[np.int32]
    symbols: tuple[str, ...]
    venue_codes: NDArray[np.int32]
    venues: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ts_ms)

    @classmethod
    def from_liquidations(cls, events: Iterable[Liquidation]) -> TapeColumns:
        """Columns of Liquidation objects (cents by bot.money.usd_to_cents, like the detector)."""
        symbols: dict[str, int] = {}
        venues: dict[str, int] = {}
        ts, cents, longs, syms, vens = [], [], [], [], []
        for e in events:
            ts.append(e.ts_ms)
            cents.append(usd_to_cents(e.notional_usd))
            longs.append(e.side == "long")
            syms.append(symbols.setdefault(e.symbol, len(symbols)))
            vens.append(venues.setdefault(e.venue, len(venues)))
        return cls(
            ts_ms=np.array(ts, dtype=np.int64),
            cents=cents_array(cents),
            is_long=np.array(longs, dtype=np.bool_),
            symbol_codes=np.array(syms, dtype=np.int32),
            symbols=tuple(symbols),
            venue_codes=np.array(vens, dtype=np.int32),
            venues=tuple(venues),
        )

    @classmethod
    def concat(cls, parts: Sequence[TapeColumns]) -> TapeColumns:
        """One tape of several, in order; names re-interned across the parts."""
        if len(parts) == 1:
            return parts[0]
        sym_index: dict[str, int] = {}
        ven_index: dict[str, int] = {}
        sym_codes, ven_codes = [], []
        for p in parts:
            smap = np.array([sym_index.setdefault(s, len(sym_index)) for s in p.symbols] or [0])
            vmap = np.array([ven_index.setdefault(v, len(ven_index)) for v in p.venues] or [0])
            sym_codes.append(smap[p.symbol_codes].astype(np.int32))
            ven_codes.append(vmap[p.venue_codes].astype(np.int32))
        wide = any(p.cents.dtype == object for p in parts)
        return cls(
            ts_ms=np.concatenate([p.ts_ms for p in parts]) if parts else empty_column(np.int64),
            cents=np.concatenate([p.cents.astype(object) if wide else p.cents for p in parts])
            if parts
            else empty_column(np.int64),
            is_long=np.concatenate([p.is_long for p in parts]) if parts else empty_column(np.bool_),
            symbol_codes=np.concatenate(sym_codes) if parts else empty_column(np.int32),
            symbols=tuple(sym_index),
            venue_codes=np.concatenate(ven_codes) if parts else empty_column(np.int32),
            venues=tuple(ven_index),
        )


def empty_column(dtype: type) -> NDArray:
    return np.zeros(0, dtype=dtype)


def cents_array(cents: list[int]) -> NDArray[np.int64]:
    try:
        return np.array(cents, dtype=np.int64)
    except OverflowError:  # beyond int64 cents: exact Python ints, slower but right
        return np.array(cents, dtype=object)
