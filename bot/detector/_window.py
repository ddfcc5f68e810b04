"""The events inside one rule's window, stored compactly, with running sums.

Contents: Window (add, expire, sums, top, items).

In-order events (the common case) live in parallel typed arrays read from a moving head, so an
event costs ~25 bytes; an event older than the newest one goes to a small heap instead, so that
expiry by time stays exact when arrivals are out of order. Sums per symbol and venue are kept
running, so the top of the window costs a sort of the distinct names, not of the events.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterator

_COMPACT_MIN = 4096  # drop expired slots once at least this many sit before the head


class Window:
    """Events of one rule with `ts_ms` in (clock - W, clock], and their sums in cents."""

    __slots__ = (
        "_cents",
        "_head",
        "_long",
        "_ooo",
        "_sym",
        "_ts",
        "_venue",
        "count",
        "long_cents",
        "sym_cents",
        "total_cents",
        "venue_cents",
    )

    def __init__(self) -> None:
        self._ts: array[int] = array("q")
        self._cents: array[int] | list[int] = array("q")
        self._sym: array[int] = array("l")
        self._venue: array[int] = array("l")
        self._long: array[int] = array("b")
        self._head = 0
        # Out-of-order arrivals: (ts_ms, cents, sym, venue, is_long), a min-heap on ts_ms.
        self._ooo: list[tuple[int, int, int, int, int]] = []
        self.count = 0
        self.total_cents = 0
        self.long_cents = 0
        self.sym_cents: dict[int, int] = {}
        self.venue_cents: dict[int, int] = {}

    def add(self, ts_ms: int, cents: int, sym: int, venue: int, is_long: bool) -> None:
        ts = self._ts
        if self._head == len(ts) or ts_ms >= ts[-1]:
            ts.append(ts_ms)
            try:
                self._cents.append(cents)
            except OverflowError:  # beyond int64 cents: keep exact Python ints from now on
                self._cents = list(self._cents)
                self._cents.append(cents)
            self._sym.append(sym)
            self._venue.append(venue)
            self._long.append(1 if is_long else 0)
        else:
            heapq.heappush(self._ooo, (ts_ms, cents, sym, venue, 1 if is_long else 0))
        self._count_in(cents, sym, venue, is_long)

    def expire(self, cut_ms: int) -> None:
        """Remove every event with ts_ms <= cut_ms."""
        ts, head, end = self._ts, self._head, len(self._ts)
        if head < end and ts[head] <= cut_ms:
            cents, sym, venue, lng = self._cents, self._sym, self._venue, self._long
            while head < end and ts[head] <= cut_ms:
                self._count_out(cents[head], sym[head], venue[head], lng[head] == 1)
                head += 1
            self._head = head
            if head >= _COMPACT_MIN and head * 2 >= end:
                for buf in (ts, cents, sym, venue, lng):
                    del buf[:head]
                self._head = 0
        ooo = self._ooo
        while ooo and ooo[0][0] <= cut_ms:
            _, c, s, v, lg = heapq.heappop(ooo)
            self._count_out(c, s, v, lg == 1)

    def items(self) -> Iterator[tuple[int, int, int, int, bool]]:
        """The events in the window: (ts_ms, cents, sym, venue, is_long), in-order part first."""
        for i in range(self._head, len(self._ts)):
            yield self._ts[i], self._cents[i], self._sym[i], self._venue[i], self._long[i] == 1
        for t, c, s, v, lg in sorted(self._ooo):
            yield t, c, s, v, lg == 1

    def _count_in(self, cents: int, sym: int, venue: int, is_long: bool) -> None:
        self.count += 1
        self.total_cents += cents
        if is_long:
            self.long_cents += cents
        sc = self.sym_cents
        sc[sym] = sc.get(sym, 0) + cents
        vc = self.venue_cents
        vc[venue] = vc.get(venue, 0) + cents

    def _count_out(self, cents: int, sym: int, venue: int, is_long: bool) -> None:
        self.count -= 1
        self.total_cents -= cents
        if is_long:
            self.long_cents -= cents
        sc = self.sym_cents
        left = sc.get(sym, 0) - cents
        if left:
            sc[sym] = left
        else:  # a name leaves the table when its sum returns to exactly zero
            sc.pop(sym, None)
        vc = self.venue_cents
        left = vc.get(venue, 0) - cents
        if left:
            vc[venue] = left
        else:
            vc.pop(venue, None)
