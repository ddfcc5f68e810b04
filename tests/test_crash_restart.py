"""Crash-restart with real processes: `liqguard replay` is SIGKILLed at seeded random moments
and right after every kind of journaled step, run again each time on the same journal, and
the journal it ends with is compared, row by row and state by state, with an uninterrupted
run's: the same orders (client ids, counts), the same fills (price, time), the same account.

On the bundled 2024-12-05 crash and on the 2025-01-27 sell-off (tests/fixtures). One journal
per tape survives the whole chain of kills (each rerun first completes what the last kill
interrupted, then is killed at the next moment)."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.restart_tools import (
    BUNDLED_PRICES,
    BUNDLED_TAPE,
    EPISODE_PRICES,
    EPISODE_TAPE,
    Snapshot,
    clean_env,
    journal_rows,
    journal_states,
    peek,
    replay_args,
    run_until,
)

STEP_KINDS = (
    "anomaly",
    "action_planned",
    "risk_verdict",
    "approval_request",
    "decision",
    "order_sent",
    "fill",
)
RANDOM_KILLS = 3


@dataclass
class Tally:
    kills: int = 0
    discrepancies: int = 0
    by_tape: dict[str, str] = field(default_factory=dict)


TALLY = Tally()


def _summary(stdout: str) -> list[str]:
    """The summary lines a user reads (PnL, drawdown, orders, fills, session)."""
    wanted = ("with the response", "untouched", "orders sent", "fills", "equity now", "session")
    lines = [re.sub(r"sqlite:\S+", "", line) for line in stdout.splitlines()]
    return [re.sub(r"\s+", " ", line).strip() for line in lines if any(w in line for w in wanted)]


def _plan(
    reference: list[tuple[str, str | None, int, str]], seed: int
) -> list[tuple[str, int | None, Callable[[Snapshot], bool]]]:
    """Kill moments in journal order: after the first row of every step kind the reference
    run writes, at seeded random row counts, after a new checkpoint, after "finished"."""
    positions: dict[int, str] = {}
    for kind in STEP_KINDS:
        at = next((i + 1 for i, row in enumerate(reference) if row[0] == kind), None)
        if at is not None:
            positions.setdefault(at, kind)
    rng = random.Random(seed)
    for at in rng.sample(range(1, len(reference)), RANDOM_KILLS):
        positions.setdefault(at, "random")

    def after_row(n: int) -> Callable[[Snapshot], bool]:
        return lambda s: s.rows >= n

    plan: list[tuple[str, int | None, Callable[[Snapshot], bool]]] = [
        (label, at, after_row(at)) for at, label in sorted(positions.items())
    ]
    seen: dict[str, int] = {}

    def new_checkpoint(s: Snapshot) -> bool:  # a checkpoint written by this very run
        events = int((s.cursor or {}).get("events", -1))
        start = seen.setdefault("start", events)
        return events > max(start, 0)

    plan.insert(len(plan) // 2, ("checkpoint", None, new_checkpoint))
    plan.append(("finished", None, lambda s: bool((s.cursor or {}).get("finished"))))
    return plan


@pytest.mark.parametrize(
    ("name", "tape", "prices", "seed"),
    [
        ("bundled 2024-12-05 crash", BUNDLED_TAPE, BUNDLED_PRICES, 9),
        ("2025-01-27 sell-off", EPISODE_TAPE, EPISODE_PRICES, 27),
    ],
)
def test_sigkill_at_any_step_then_rerun_matches_an_uninterrupted_run(
    tmp_path: Path,
    name: str,
    tape: Path,
    prices: Path,
    seed: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = clean_env()
    ref_dir, crash_dir = tmp_path / "ref", tmp_path / "crash"
    ref_dir.mkdir()
    crash_dir.mkdir()
    ref_journal, crash_journal = ref_dir / "j.sqlite", crash_dir / "j.sqlite"
    ref = run_until(replay_args(tape, prices, ref_journal), ref_dir, None, env)
    assert ref.code == 0, ref.stderr[-2000:]
    reference = journal_rows(ref_journal)
    kinds = Counter(r[0] for r in reference)
    assert kinds["order_sent"] > 0 and kinds["fill"] > 0  # the tape trades: the test can fail

    first_at = {k: next(i + 1 for i, r in enumerate(reference) if r[0] == k) for k in kinds}
    kills: list[str] = []
    covered: set[str] = set()  # step kinds a kill came right after (in the commit that wrote them)
    for label, at, when in _plan(reference, seed):
        before = peek(crash_journal).rows
        if at is not None and before >= at:
            continue  # an earlier kill came later than this moment
        ended = run_until(replay_args(tape, prices, crash_journal), crash_dir, when, env)
        assert ended.code in (0, -9), ended.stderr[-2000:]
        assert "Traceback" not in ended.stderr
        if ended.code == -9:
            after = {k for k, n in first_at.items() if before < n <= ended.rows_at_kill}
            covered |= after
            kills.append(f"{label}: rows {before}->{ended.rows_at_kill} {sorted(after) or ''}")
    final = run_until(replay_args(tape, prices, crash_journal), crash_dir, None, env)
    assert final.code == 0, final.stderr[-2000:]
    assert "Traceback" not in final.stderr

    got = journal_rows(crash_journal)
    missing = Counter(reference) - Counter(got)
    extra = Counter(got) - Counter(reference)
    want_states, got_states = journal_states(ref_journal), journal_states(crash_journal)
    bad_states = sorted(
        n for n in want_states.keys() | got_states.keys() if want_states.get(n) != got_states.get(n)
    )
    discrepancies = sum(missing.values()) + sum(extra.values()) + len(bad_states)
    TALLY.kills += len(kills)
    TALLY.discrepancies += discrepancies
    with capsys.disabled():
        print(
            f"\n[crash-restart] {name}: {len(kills)} SIGKILLs survived, "
            f"{discrepancies} discrepancies ({len(reference)} journal rows compared; "
            f"kills: {'; '.join(kills)})"
        )

    assert not missing and not extra, (missing, extra)
    assert not bad_states, bad_states
    assert got == reference  # the same rows in the same order, too
    # the user-visible figures: orders by client id, fills by price and time, the account
    sent = [r[1] for r in got if r[0] == "order_sent"]
    assert sent == [r[1] for r in reference if r[0] == "order_sent"] and len(set(sent)) == len(sent)
    assert _summary(final.stdout) == _summary(ref.stdout)
    assert "before; its summary follows" in final.stderr  # the last kill came after "finished"
    assert covered >= set(kinds) & set(STEP_KINDS)  # a kill right after every step kind
