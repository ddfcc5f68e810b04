"""Active-standby for real: several `liqguard run --live` processes of one account (ha.group)
on one PostgreSQL journal, against the local Binance playing a cascade of bursts (each burst
crosses the threshold once: one action, one order).

- the leader is SIGKILLed at seeded random moments while bursts keep coming: a standby takes
  over within lease_s + renew_s, and the venue's order log holds every burst's order exactly
  once (none missing against what the detector finds offline, none doubled)
- the leader is SIGSTOPped past its lease (a burst arrives meanwhile), then SIGCONTinued: it
  sends nothing (the database refuses its commit) and steps down
- PostgreSQL is restarted under the processes: they recover, nothing is doubled or lost
The counts are printed (pytest -s shows them): kills, takeovers, orders, duplicates, losses,
longest gap without a leader.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from bot.config.policy import PolicyConfig
from bot.config.rules import RuleConfig
from bot.detector import Detector
from bot.engine import ids
from bot.events import Anomaly
from bot.sim.localexchange.tapes import tape_messages
from bot.sources.venues import parse_raw_message

ROOT = Path(__file__).resolve().parents[1]
TAPE = ROOT / "bot/data/binance-btcusdt_2024-12-04_06.csv"
THRESHOLD_USD = 50_000.0
# each burst is played at the wall clock (the leader ticks its windows with it), 1.2 s apart:
# longer than the window and the escalation window, so every burst is one fresh anomaly
RULE = RuleConfig(name="ha", window_s=0.4, threshold_usd=THRESHOLD_USD, escalation_window_s=0.4)
GAP_S = 1.2
LEASE_S, RENEW_S = 3.0, 0.75
GROUP = "acct"
SEED = 20241205
# each kill needs a warm standby started beforehand, and liqguard takes ~10 CPU-s to start (its
# imports): more kills cost test time, LIQGUARD_HA_KILLS=20 for a longer run
KILLS = int(os.environ.get("LIQGUARD_HA_KILLS", "2"))
PROCESSES = KILLS + 2  # after the kills: a leader and a standby for SIGSTOP
# a loaded 2-core machine delays the standby's look by up to this much (scheduling, not logic)
SLACK_S = 2.0
REDUCE = {"fraction": 0.01, "symbols": ["BTCUSDT"], "sides": "both"}
POLICY = PolicyConfig.model_validate(
    {"levels": {1: [{"strategy": "reduce_exposure", "params": REDUCE}]}, "calm": []}
)
LIQGUARD_RUN = [sys.executable, "-m", "bot.cli", "run", "--live", "--source", "binance"]


def _bursts(n: int) -> list[list[dict[str, Any]]]:
    tape = tape_messages(TAPE)
    out: list[list[dict[str, Any]]] = []
    i = 0
    while len(out) < n:
        burst, usd = [], 0.0
        while usd < THRESHOLD_USD:
            msg = tape[i % len(tape)]
            i += 1
            usd += sum(liq.notional_usd for liq in parse_raw_message(msg))
            burst.append(msg)
        out.append(burst)
    return out


def _retimed(msg: dict[str, Any], ts_ms: int) -> dict[str, Any]:
    return {**msg, "E": ts_ms + 1, "o": {**msg["o"], "T": ts_ms}}


def _expected_client_ids(bursts: list[list[dict[str, Any]]]) -> list[str]:
    """What an uninterrupted run sends: the detector offline, one order per anomaly."""
    detector, out = Detector([RULE]), []
    for burst in bursts:
        for msg in burst:
            for liq in parse_raw_message(msg):
                for det in detector.on_liquidation(liq):
                    if not isinstance(det, Anomaly):
                        continue  # calm: the policy answers it with nothing
                    block = POLICY.for_rule(det.rule)
                    assert len(block.actions_for_level(det.level)[1]) == 1  # one action
                    aid = ids.action_id(f"ha-{GROUP}", det.rule, det.ts_ms, det.level, 0)
                    out.append(f"{aid}-0")
    assert len(out) == len(bursts)
    return out


class Exchange:
    def __init__(self, tmp: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.sim.localexchange"],
            stdout=subprocess.PIPE,
            stderr=open(tmp / "exchange.log", "w"),  # noqa: SIM115
            text=True,
            cwd=tmp,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            return json.load(r)

    def post(self, path: str, body: Any) -> Any:
        req = urllib.request.Request(
            self.base + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)

    def client_ids(self) -> list[str]:
        return [o["client_id"] for o in self.get("/_ctl/orders")]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Group:
    """The liqguard processes of one account, and the lease row as the database says it."""

    def __init__(self, tmp: Path, url: str, exchange: Exchange) -> None:
        self.tmp, self.url = tmp, url
        endpoints = {
            "rest": exchange.base,
            "ws": f"ws://127.0.0.1:{exchange.port}/ws",
            "allow_insecure": True,
        }
        config = {
            "mode": "live",
            "rules": [RULE.model_dump()],
            "policy": POLICY.model_dump(mode="json"),
            "risk": {"max_actions_per_hour": 1_000_000, "max_order_usd": 1_000_000},
            "exchanges": {"venues": {"binance": {"endpoints": endpoints}}},
            "journal": {"url": url},
            "ha": {"group": GROUP, "lease_s": LEASE_S, "renew_s": RENEW_S},
            "approvals": {"channel": "auto"},
        }
        self.config = tmp / "ha.yaml"
        self.config.write_text(json.dumps(config))  # JSON is YAML
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.dsn = url.replace("postgresql+psycopg://", "postgresql://")

    def start(self) -> int:
        env = {
            **os.environ,
            "LIQGUARD_BINANCE_API_KEY": "test-key",
            "LIQGUARD_BINANCE_API_SECRET": "test-secret",
        }
        n = len(self.procs)
        proc = subprocess.Popen(
            [*LIQGUARD_RUN, "--config", str(self.config)],
            stdout=open(self.tmp / f"p{n}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.tmp,
        )
        self.procs[proc.pid] = proc
        return proc.pid

    def lease(self) -> tuple[int, int, bool] | None:
        """(term, pid of the holder, valid now?), or None (no row, or the database is away)."""
        try:
            with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                row = conn.execute(
                    "SELECT term, holder, expires_at > clock_timestamp() FROM ha_leases "
                    "WHERE grp = %s",
                    (GROUP,),
                ).fetchone()
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
            return None  # the database is away, or no process has made the table yet
        if row is None:
            return None
        return int(row[0]), int(str(row[1]).split(":")[1]), bool(row[2])

    def roles(self) -> list[dict[str, Any]]:
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                "SELECT payload FROM journal_entries WHERE kind = 'ha_role' ORDER BY id"
            ).fetchall()
        return [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]

    def wait_term_above(self, term: int, timeout_s: float = 600) -> tuple[int, int]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.lease()
            if got is not None and got[0] > term and got[2]:
                return got[0], got[1]
            time.sleep(0.05)
        raise AssertionError(f"no leader after term {term} within {timeout_s} s")

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                if proc.returncode is None:
                    os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.wait()


class Player:
    """Plays the bursts one after the other, in its own thread, while the test kills."""

    def __init__(self, exchange: Exchange, bursts: list[list[dict[str, Any]]]) -> None:
        self.exchange, self.bursts, self.played = exchange, bursts, 0
        self.sent: list[list[dict[str, Any]]] = []  # as played: at the wall clock
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.until = 0
        self.wake = threading.Event()

    def play_to(self, n: int) -> None:
        self.until = min(n, len(self.bursts))
        self.wake.set()
        if not self.thread.is_alive():
            self.thread.start()

    def _run(self) -> None:
        while True:
            while self.played < self.until:
                now_ms = time.time_ns() // 1_000_000
                burst = [_retimed(m, now_ms + k) for k, m in enumerate(self.bursts[self.played])]
                self.sent.append(burst)
                self.exchange.post(
                    "/_ctl/bursts", {"bursts": [burst], "wait_order_s": 0, "gap_s": GAP_S}
                )
                self.played += 1
            self.wake.clear()
            if self.played >= len(self.bursts):
                return
            self.wake.wait(1)

    def wait(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while self.played < self.until and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.played >= self.until


def _wait_orders(exchange: Exchange, want: set[str], timeout_s: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = exchange.client_ids()
        if want <= set(got):
            time.sleep(1.0)  # a doubled order would arrive right after: give it the time
            return exchange.client_ids()
        time.sleep(0.1)
    return exchange.client_ids()


def test_failover_kill_stop_and_database_restart(tmp_path: Path, pg: Any) -> None:
    rng = random.Random(SEED)
    per_phase = 6
    bursts = _bursts(per_phase * (KILLS + 3))
    exchange = Exchange(tmp_path)
    exchange.post("/_ctl/position", {"symbol": "BTCUSDT", "amount": 200.0})
    group = Group(tmp_path, pg.url(), exchange)
    player = Player(exchange, bursts)
    counts = Counter[str]()
    gaps: list[float] = []
    try:
        for _ in range(PROCESSES):
            group.start()
        term, leader = group.wait_term_above(0)
        deadline = time.monotonic() + 600
        while exchange.get("/_ctl/subscribers")["n"] < PROCESSES:  # every standby warm
            assert time.monotonic() < deadline, "the processes did not all subscribe"
            time.sleep(0.2)

        # -- SIGKILL the leader at seeded random moments while bursts come ---------------------
        for k in range(KILLS):
            player.play_to(per_phase * (k + 1))
            time.sleep(rng.uniform(0.0, 1.5))  # somewhere inside the burst stream
            os.kill(leader, signal.SIGKILL)
            killed_at = time.monotonic()
            counts["kills"] += 1
            new_term, new_leader = group.wait_term_above(term)
            gaps.append(time.monotonic() - killed_at)
            counts["takeovers"] += new_term - term
            assert new_leader != leader
            term, leader = new_term, new_leader
            player.wait()
        done = per_phase * KILLS
        got = _wait_orders(exchange, set(_expected_client_ids(player.sent[:done])))
        seen = Counter(got)
        assert [c for c in _expected_client_ids(player.sent[:done]) if seen[c] != 1] == []

        # -- SIGSTOP the leader past its lease, a burst meanwhile, then SIGCONT ---------------
        os.kill(leader, signal.SIGSTOP)
        stopped_at = time.monotonic()
        new_term, new_leader = group.wait_term_above(term)
        gaps.append(time.monotonic() - stopped_at)
        counts["takeovers"] += new_term - term
        player.play_to(done + per_phase)
        player.wait()
        _wait_orders(exchange, set(_expected_client_ids(player.sent[: done + per_phase])))
        os.kill(leader, signal.SIGCONT)  # it still holds its frames and its old term
        deadline = time.monotonic() + 60
        while not any(
            r["role"] == "stepped down" and r["holder"].split(":")[1] == str(leader)
            for r in group.roles()
        ):
            assert time.monotonic() < deadline, "the frozen leader did not step down"
            time.sleep(0.2)
        term, leader = new_term, new_leader
        done += per_phase

        # -- PostgreSQL stopped under both for longer than the lease, then started --------------
        player.play_to(done + 2)
        player.wait()
        _wait_orders(exchange, set(_expected_client_ids(player.sent[: done + 2])))
        before = exchange.client_ids()
        pg.stop("immediate")  # every connection cut, as a crash would
        stopped_at = time.monotonic()
        player.play_to(done + 4)  # bursts while no lease can be proven
        player.wait()
        while time.monotonic() < stopped_at + LEASE_S + RENEW_S:
            time.sleep(0.1)  # past any lease: a sender now would be a leader nobody elected
        assert exchange.client_ids() == before  # nobody sent while the database was away
        pg.start()
        new_term, leader = group.wait_term_above(term)  # the lease ran out: a new term
        counts["takeovers"] += new_term - term
        term = new_term
        gaps.append(time.monotonic() - stopped_at)
        counts["database outages"] += 1
        player.play_to(done + per_phase)
        player.wait()
        done += per_phase
        got = _wait_orders(exchange, set(_expected_client_ids(player.sent[:done])))
    finally:
        group.close()
        exchange.close()
        if not pg.running:  # the other tests share the server
            pg.start()

    seen = Counter(got)
    counts["orders"] = len(got)
    counts["duplicates"] = sum(n - 1 for n in seen.values() if n > 1)
    counts["losses"] = sum(1 for c in _expected_client_ids(player.sent[:done]) if seen[c] == 0)
    longest = max(gaps[: KILLS + 1])  # the outage's gap is the outage itself
    print(
        f"\nha failover: kills {counts['kills']}, takeovers {counts['takeovers']}, orders "
        f"{counts['orders']} (expected {done}), duplicates {counts['duplicates']}, losses "
        f"{counts['losses']}, longest gap without a leader {longest:.2f} s, database "
        f"outage {gaps[-1]:.2f} s to a new leader "
        f"(lease_s {LEASE_S} + renew_s {RENEW_S}; gaps {', '.join(f'{g:.2f}' for g in gaps)})"
    )
    assert counts["duplicates"] == 0 and counts["losses"] == 0
    # nothing the detector did not ask for
    assert set(got) == set(_expected_client_ids(player.sent[:done]))
    assert max(gaps[: KILLS + 1]) <= LEASE_S + RENEW_S + SLACK_S
