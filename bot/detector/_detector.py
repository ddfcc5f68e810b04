"""The streaming detector: several rules side by side over one stream of liquidations.

Contents: Detector (on_liquidation, on_tick, status, snapshot, restore).
Pure: no I/O, no wall clock; time arrives with the events and the ticks.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from bot.config.rules import RuleConfig
from bot.detector._rule import RuleState, RuleStatus
from bot.events import Anomaly, Calm, Liquidation
from bot.money import usd_to_cents
from bot.symbols import symbol_matches, venue_matches

SNAPSHOT_VERSION = 1


class Detector:
    """Feed liquidations (and clock ticks); get the Anomaly and Calm events of detector.md.

    Events of one call come rule by rule in rule order, a Calm before the Anomaly it precedes.
    """

    def __init__(self, rules: Sequence[RuleConfig]) -> None:
        names = [r.name for r in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dupes)}")
        self._rules = [RuleState(r) for r in rules]
        # Symbols and venues interned to small ints; per rule, a filter verdict per id.
        self._sym_ids: dict[str, int] = {}
        self._venue_ids: dict[str, int] = {}
        self._names: tuple[list[str], list[str]] = ([], [])
        self._sym_ok: list[list[bool]] = [[] for _ in rules]
        self._venue_ok: list[list[bool]] = [[] for _ in rules]

    @property
    def rules(self) -> tuple[RuleConfig, ...]:
        return tuple(r.config for r in self._rules)

    @property
    def late(self) -> dict[str, int]:
        """Late events (ts_ms <= clock - W, not counted) per rule."""
        return {r.name: r.late for r in self._rules}

    @property
    def peaks(self) -> dict[str, tuple[int, int]]:
        """Per rule, the largest window sum seen after an event (cents) and the clock then."""
        return {r.name: r.peak for r in self._rules if r.peak is not None}

    # -- input ---------------------------------------------------------------------------------

    def on_liquidation(self, liq: Liquidation) -> list[Anomaly | Calm]:
        """Process one event in arrival order; return what it caused, rule by rule."""
        if liq.side not in ("long", "short"):
            raise ValueError(f"side must be 'long' or 'short', got {liq.side!r}")
        sym = self._intern_symbol(liq.symbol)
        venue = self._intern_venue(liq.venue)
        is_long = liq.side == "long"
        out: list[Anomaly | Calm] = []
        cents: int | None = None
        for i, rule in enumerate(self._rules):
            if liq.side in rule.sides and self._sym_ok[i][sym] and self._venue_ok[i][venue]:
                if cents is None:
                    cents = usd_to_cents(liq.notional_usd)
                rule.on_event(liq.ts_ms, cents, sym, venue, is_long, self._names, out)
        return out

    def on_tick(self, now_ms: int, skip: Collection[str] = ()) -> list[Calm]:
        """Advance every rule's clock to now_ms (never backwards); emit Calm on time.

        Rules named in `skip` stand still (their feed is dead: no calm on silence).
        """
        out: list[Anomaly | Calm] = []
        for rule in self._rules:
            if rule.name not in skip:
                rule.on_tick(now_ms, out)
        return [e for e in out if isinstance(e, Calm)]

    def reconfigure(self, rules: Sequence[RuleConfig]) -> list[Anomaly | Calm]:
        """Run with new rule settings from now on (a runtime override, a reloaded file).

        A rule whose name, filters (venues, symbols, sides) and window_s are unchanged keeps
        its window, clock, level and t_last; its thresholds are recomputed from the new
        threshold_usd and factor, and steps 3-4 of detector.md run once at its clock (a lower
        threshold may fire at once, a shorter escalation window may calm). Any other rule
        starts empty (a new one, or one whose counted events would differ); a rule left out
        is dropped, without a Calm. Returns what the change caused, rule by rule.
        """
        names = [r.name for r in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dupes)}")
        old = {r.name: r for r in self._rules}
        out: list[Anomaly | Calm] = []
        states = []
        for cfg in rules:
            prev = old.get(cfg.name)
            if prev is not None and _same_counting(prev.config, cfg):
                prev.retune(cfg, self._names, out)
                states.append(prev)
            else:
                states.append(RuleState(cfg))
        self._rules = states
        # the filter verdicts of every name seen so far, for the new rule list
        self._sym_ok = [
            [not r.config.symbols or any(symbol_matches(t, s) for t in r.config.symbols)
             for s in self._names[0]]
            for r in states
        ]  # fmt: skip
        self._venue_ok = [
            [not r.config.venues or any(venue_matches(t, v) for t in r.config.venues)
             for v in self._names[1]]
            for r in states
        ]  # fmt: skip
        return out

    # -- inspection and resume -----------------------------------------------------------------

    def status(self) -> list[RuleStatus]:
        return [r.status() for r in self._rules]

    def snapshot(self) -> dict[str, Any]:
        """The full state as a JSON-able dict (the window's events included), for resume."""
        sym_names, venue_names = self._names
        rules = {}
        for r in self._rules:
            rules[r.name] = {
                "clock_ms": r.clock_ms,
                "level": r.level,
                "last_anomaly_ms": r.last_anomaly_ms,
                "late": r.late,
                "events": [
                    [ts, cents, sym_names[s], venue_names[v], "long" if lg else "short"]
                    for ts, cents, s, v, lg in r.window.items()
                ],
            }
        return {"version": SNAPSHOT_VERSION, "rules": rules}

    def restore(self, state: dict[str, Any]) -> None:
        """Load a snapshot() of a detector with the same rules; rules absent start empty."""
        if state.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"detector snapshot version {state.get('version')!r} is not "
                f"{SNAPSHOT_VERSION}; start without the snapshot to rebuild the state"
            )
        saved: dict[str, Any] = state.get("rules", {})
        for i, old in enumerate(self._rules):
            rule = self._rules[i] = RuleState(old.config)
            s = saved.get(rule.name)
            if s is None:
                continue
            rule.clock_ms = s["clock_ms"]
            rule.level = s["level"]
            rule.last_anomaly_ms = s["last_anomaly_ms"]
            rule.late = s["late"]
            for ts, cents, symbol, venue, side in s["events"]:
                sid, vid = self._intern_symbol(symbol), self._intern_venue(venue)
                rule.window.add(int(ts), int(cents), sid, vid, side == "long")

    # -- interning -----------------------------------------------------------------------------

    def _intern_symbol(self, symbol: str) -> int:
        sid = self._sym_ids.get(symbol)
        if sid is None:
            sid = self._sym_ids[symbol] = len(self._names[0])
            self._names[0].append(symbol)
            for ok, rule in zip(self._sym_ok, self._rules, strict=True):
                tokens = rule.config.symbols
                ok.append(not tokens or any(symbol_matches(t, symbol) for t in tokens))
        return sid

    def _intern_venue(self, venue: str) -> int:
        vid = self._venue_ids.get(venue)
        if vid is None:
            vid = self._venue_ids[venue] = len(self._names[1])
            self._names[1].append(venue)
            for ok, rule in zip(self._venue_ok, self._rules, strict=True):
                tokens = rule.config.venues
                ok.append(not tokens or any(venue_matches(t, venue) for t in tokens))
        return vid


def _same_counting(a: RuleConfig, b: RuleConfig) -> bool:
    """Whether two settings of a rule count the same events in the same window."""
    return (a.venues, a.symbols, tuple(sorted(a.sides)), a.window_ms) == (
        b.venues,
        b.symbols,
        tuple(sorted(b.sides)),
        b.window_ms,
    )
