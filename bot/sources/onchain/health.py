"""A chain feed's health: one state from its problems and the age of the node's newest block.

Contents: ChainHealth: problem(key, detail | None), head_seen(number, timestamp_s),
check() -> FeedStatus | None (only when the state changes), seconds_to_stale().

States, worst first:
- `blind`: reading the chain keeps failing (`loop`: the node answers nonsense, a bad key, a
  bug), or the head is older than `max_head_age_s`: no new block arrived for that long (a
  stuck node, or no answer at all), or the newest block's own timestamp is that old (a node
  that advances but lags behind the chain);
- `reconnecting`: the node is down or throttling (`rpc`), or the websocket is down (`ws`:
  eth_getLogs polling meanwhile);
- `live`.
Pure: the clock is injected, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from bot.events import FeedStatus

Problem = Literal["loop", "rpc", "ws"]
State = Literal["live", "blind", "reconnecting"]


class ChainHealth:
    """The state of one chain's feed; check() says when it changed."""

    def __init__(self, venue: str, max_head_age_s: float, now_ms: Callable[[], int]) -> None:
        self.venue = venue
        self.max_head_age_s = max_head_age_s
        self._now_ms = now_ms
        self.state: State = "live"
        self.head: int | None = None
        self._arrived_s = now_ms() / 1000  # before any head: the age counts from the start
        self._head_ts_s: float | None = None
        self._problems: dict[Problem, str] = {}

    def problem(self, key: Problem, detail: str | None) -> None:
        """Set (detail) or clear (None) one problem."""
        if detail is None:
            self._problems.pop(key, None)
        else:
            self._problems[key] = detail

    def head_seen(self, number: int, timestamp_s: int) -> None:
        if self.head is None or number > self.head:
            self.head = number
            self._arrived_s = self._now_ms() / 1000
            self._head_ts_s = float(timestamp_s)

    def ages_s(self) -> tuple[float, float]:
        """(since the newest block arrived, since its timestamp), never negative."""
        now_s = self._now_ms() / 1000
        lag_s = now_s - self._head_ts_s if self._head_ts_s is not None else 0.0
        return max(0.0, now_s - self._arrived_s), max(0.0, lag_s)

    def seconds_to_stale(self) -> float:
        """Until the head is too old (<= 0: it is already)."""
        return self.max_head_age_s - max(self.ages_s())

    def check(self) -> FeedStatus | None:
        """The new status if the state changed since the last check, else None."""
        quiet_s, lag_s = self.ages_s()
        limit = f"max_head_age_s {self.max_head_age_s:g}"
        state: State
        if "loop" in self._problems:
            state, detail = "blind", self._problems["loop"]
        elif quiet_s > self.max_head_age_s:
            head = f"last block {self.head}" if self.head is not None else "no block read yet"
            state = "blind"
            detail = f"no new block for {quiet_s:.0f}s ({head}; {limit}): node stuck or down"
        elif lag_s > self.max_head_age_s:
            state = "blind"
            detail = (
                f"the node's newest block {self.head} is {lag_s:.0f}s old ({limit}): "
                "node lagging (or this machine's clock is off)"
            )
        elif self._problems:
            state, detail = "reconnecting", "; ".join(self._problems.values())
        else:
            state, detail = "live", f"block {self.head}, {lag_s:.0f}s old"
        if state == self.state:
            return None
        self.state = state
        silent_s = max(quiet_s, lag_s)
        return FeedStatus(self._now_ms(), self.venue, state, silent_s=silent_s, detail=detail)
