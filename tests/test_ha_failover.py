"""Active-standby for real: `liqguard run --live` processes of one account (ha.group) on one
PostgreSQL journal, against the local Binance playing a cascade of bursts (each burst crosses
the threshold once: one action, one order).

- the leader is SIGKILLed at seeded random moments while bursts keep coming, 20 times by
  default: a standby takes over within lease_s + renew_s, and the venue's order log holds every
  burst's order exactly once (none missing against what the detector finds offline, none
  doubled)
- the leader is SIGSTOPped past its lease (a burst arrives meanwhile), then SIGCONTinued: it
  sends nothing (the database refuses its commit) and steps down
- PostgreSQL is stopped under the processes past the lease: nobody sends; started again: a new
  term, nothing doubled or lost
- who leads is visible: the leader's /metrics and status page say leader and its term, a
  standby's say standby and refuse every button
The counts are printed (pytest -s shows them): kills, takeovers, orders, duplicates, losses,
longest gap without a leader.

Cheap by construction: the processes are forked from one parent that imported liqguard once
(tests/ha_zygote.py: a start costs milliseconds, not ~2 s of imports), the standbys of a round
of kills are started together ahead of it, the lease is short (1 s, renewed every 0.25 s), and
every wait is on an event (the lease row, the venue's order log, the subscriber count).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
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
from bot.sim.localexchange.tapes import crossing_bursts
from bot.sources.venues import parse_raw_message

ROOT = Path(__file__).resolve().parents[1]
TAPE = ROOT / "bot/data/binance-btcusdt_2024-12-04_06.csv"
THRESHOLD_USD = 50_000.0
# each burst is played at the wall clock (the leader ticks its windows with it), GAP_S apart:
# longer than the window and the escalation window, so every burst is one fresh anomaly
RULE = RuleConfig(name="ha", window_s=0.4, threshold_usd=THRESHOLD_USD, escalation_window_s=0.4)
GAP_S = 0.6
PER_KILL = 2  # bursts played around each kill
LEASE_S, RENEW_S = 1.0, 0.25
GROUP = "acct"
SEED = 20241205
KILLS = int(os.environ.get("LIQGUARD_HA_KILLS", "20"))
STANDBYS = 10  # warm standbys a round: STANDBYS kills, then the pool is refilled (two rounds)
TAKEOVER_S = 1.0  # a new leader is killed again within this of its term (mostly reconciling)
# a loaded 2-core machine delays the standby's look by up to this much (scheduling, not logic)
SLACK_S = 1.5
REDUCE = {"fraction": 0.01, "symbols": ["BTCUSDT"], "sides": "both"}
POLICY = PolicyConfig.model_validate(
    {"levels": {1: [{"strategy": "reduce_exposure", "params": REDUCE}]}, "calm": []}
)
LIQGUARD_RUN = ["run", "--live", "--source", "binance", "--http", "127.0.0.1:0"]
LIQGUARD_RUN += ["--metrics", "127.0.0.1:0"]


def _bursts(n: int) -> list[list[dict[str, Any]]]:
    return crossing_bursts(TAPE, THRESHOLD_USD, n)


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


class Zygote:
    """tests/ha_zygote.py: forks liqguard processes on demand (see its docstring)."""

    def __init__(self, tmp: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "ha_zygote.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(tmp / "zygote.log", "w"),  # noqa: SIM115
            text=True,
            cwd=tmp,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        line = self.proc.stdout.readline()
        assert line == "READY\n", (tmp / "zygote.log").read_text()

    def fork(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        order = {"argv": argv, "env": env, "log": str(log), "cwd": str(cwd)}
        self.proc.stdin.write(json.dumps(order) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Group:
    """The liqguard processes of one account, and the lease row as the database says it."""

    def __init__(self, tmp: Path, url: str, exchange: Exchange, zygote: Zygote) -> None:
        self.tmp, self.url, self.exchange, self.zygote = tmp, url, exchange, zygote
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
        self.pids: list[int] = []
        self.dsn = url.replace("postgresql+psycopg://", "postgresql://")
        self.env = {
            **os.environ,
            "LIQGUARD_BINANCE_API_KEY": "test-key",
            "LIQGUARD_BINANCE_API_SECRET": "test-secret",
        }

    def start(self) -> int:
        n = len(self.pids)
        argv = [*LIQGUARD_RUN, "--config", str(self.config)]
        pid = self.zygote.fork(argv, self.env, self.tmp / f"p{n}.log", self.tmp)
        self.pids.append(pid)
        return pid

    def alive(self) -> list[int]:
        return [p for p in self.pids if _alive(p)]

    def log(self, pid: int) -> str:
        return (self.tmp / f"p{self.pids.index(pid)}.log").read_text(errors="replace")

    def url_of(self, pid: int, which: str, timeout_s: float = 30) -> str:
        """The base URL a process serves `which` (metrics, http) on: it says it in its log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.search(rf"ha {which} on (http://\S+/)", self.log(pid))
            if found:
                return found.group(1)
            time.sleep(0.05)
        raise AssertionError(f"process {pid} did not serve {which}: {self.log(pid)[-2000:]}")

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

    def wait_term_above(self, term: int, timeout_s: float = 60) -> tuple[int, int]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.lease()
            if got is not None and got[0] > term and got[2]:
                return got[0], got[1]
            time.sleep(0.02)
        raise AssertionError(f"no leader after term {term} within {timeout_s} s")

    def wait_subscribed(self, timeout_s: float = 60) -> None:
        """Every live process has its feed open: none misses the next burst."""
        deadline = time.monotonic() + timeout_s
        while self.exchange.get("/_ctl/subscribers")["n"] < len(self.alive()):
            assert time.monotonic() < deadline, "the processes did not all subscribe"
            time.sleep(0.02)

    def close(self) -> None:
        for pid in self.alive():
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)


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
            self.wake.clear()  # before looking: a play_to from now on wakes the wait below
            while self.played < self.until:
                now_ms = time.time_ns() // 1_000_000
                burst = [_retimed(m, now_ms + k) for k, m in enumerate(self.bursts[self.played])]
                self.sent.append(burst)
                self.exchange.post(
                    "/_ctl/bursts", {"bursts": [burst], "wait_order_s": 0, "gap_s": GAP_S}
                )
                self.played += 1
            if self.played >= len(self.bursts):
                return
            self.wake.wait()

    def wait(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while self.played < self.until and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.played >= self.until


def _wait_orders(exchange: Exchange, want: set[str], timeout_s: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = exchange.client_ids()
        if want <= set(got):
            return got
        time.sleep(0.02)
    return exchange.client_ids()


def _get(url: str, timeout_s: float = 30) -> tuple[int, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:  # refused or reset: the port is re-bound while the role changes
            assert time.monotonic() < deadline, f"{url} refused for {timeout_s} s"
            time.sleep(0.05)


def _post(url: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, b"{}", {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _gauge(text: str, name: str) -> float | None:
    found = re.search(rf'^{name}{{group="{GROUP}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def _role_of(group: Group, pid: int) -> tuple[float | None, float | None, str]:
    _, text = _get(group.url_of(pid, "metrics") + "metrics")
    return _gauge(text, "liqguard_ha_leader"), _gauge(text, "liqguard_ha_term"), text


def _wait_role(group: Group, pid: int, leading: bool, timeout_s: float = 30) -> tuple[int, str]:
    """Until the process's /metrics says leader 1 (0) and the lease row's term: who leads is
    visible. Returns (term, the metrics text)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lease = group.lease()
        leader, term, text = _role_of(group, pid)
        held = lease is not None and lease[2] and (lease[1] == pid) == leading
        if held and lease is not None and (leader, term) == (float(leading), float(lease[0])):
            return lease[0], text
        assert time.monotonic() < deadline, f"{pid} {lease}: {text[-600:]}"
        time.sleep(0.05)


def _check_views(group: Group, timeout_s: float = 60) -> None:
    """Metrics, status page and buttons of the leader and of a standby."""
    deadline = time.monotonic() + timeout_s
    while True:  # one term seen by both (a loaded machine may change leaders meanwhile)
        lease = group.lease()
        if lease is not None and lease[2]:
            term, leader = lease[0], lease[1]
            standby = next(p for p in group.alive() if p != leader)
            led, led_term, text = _role_of(group, leader)
            stood, stood_term, _ = _role_of(group, standby)
            if (led, led_term, stood, stood_term) == (1.0, term, 0.0, term):
                break
        assert time.monotonic() < deadline, f"the roles never showed: {lease}"
        time.sleep(0.05)
    assert "liqguard_rule_level" in text  # the leader serves the run's own metrics too
    _, status = _get(group.url_of(leader, "http") + "api/status")
    ha = json.loads(status)["ha"]
    assert (ha["role"], ha["group"]) == ("leader", GROUP) and ha["term"] >= term
    assert ha["holder"].split(":")[1] == str(leader)
    page = group.url_of(standby, "http")
    _, status = _get(page + "api/status")
    ha = json.loads(status)["ha"]
    assert ha["role"] == "standby" and ha["holder"].split(":")[1] == str(standby)
    assert ha["leader"] is None or ha["leader"].split(":")[1] != str(standby)
    code, answer = _post(page + "api/pause")  # a standby's page acts on nothing
    assert code == 409 and "standby" in answer["message"], answer
    assert _get(page + "healthz")[0] == 200


def test_failover_kill_stop_and_database_restart(tmp_path: Path, pg: Any) -> None:
    rng = random.Random(SEED)
    bursts = _bursts(PER_KILL * (KILLS + 3) + 2)  # more than the run plays
    t0 = time.monotonic()
    phases: dict[str, float] = {}  # where the test's time goes, printed
    zygote = Zygote(tmp_path)
    phases["imports"] = time.monotonic() - t0
    exchange = Exchange(tmp_path)
    exchange.post("/_ctl/position", {"symbol": "BTCUSDT", "amount": 200.0})
    group = Group(tmp_path, pg.url(), exchange, zygote)
    player = Player(exchange, bursts)
    counts = Counter[str]()
    gaps: list[float] = []

    def settled() -> list[str]:
        """Every burst played so far has its order, and every process is subscribed: the
        next kill cannot fall on a standby that missed a burst nobody answered."""
        player.wait()
        want = set(_expected_client_ids(player.sent[: player.played]))
        got = _wait_orders(exchange, want)
        assert want <= set(got), sorted(want - set(got))
        group.wait_subscribed()
        return got

    try:
        for _ in range(1 + STANDBYS):
            group.start()
        term, leader = group.wait_term_above(0)
        phases["first term"] = time.monotonic() - t0
        group.wait_subscribed()
        phases["subscribed"] = time.monotonic() - t0
        first = term
        _check_views(group)
        phases["start"] = time.monotonic() - t0

        # -- SIGKILL the leader at seeded random moments ---------------------------------------
        # A detection the dead leader never journaled lives only in the standbys that saw it, so
        # no process joins between a burst and its answer: the pool is topped up when every
        # order is in, then bursts play all round long while the leader is killed, and each
        # new leader again at a random moment of its takeover (reconciling, resuming the dead
        # leader's actions, answering what it saw, or trading), until one process is left
        t1 = time.monotonic()

        def kill_leader() -> None:
            lease = group.lease()
            assert lease is not None
            term, leader = lease[0], lease[1]  # the holder now (a leader may step down alone)
            os.kill(leader, signal.SIGKILL)
            killed_at = time.monotonic()
            counts["kills"] += 1
            _, new_leader = group.wait_term_above(term)
            gaps.append(time.monotonic() - killed_at)
            assert new_leader != leader

        while counts["kills"] < KILLS:
            settled()
            while len(group.alive()) < 1 + STANDBYS:
                group.start()
            group.wait_subscribed()
            round_kills = min(STANDBYS, KILLS - counts["kills"])
            player.play_to(player.played + PER_KILL * round_kills)  # bursts all round long
            time.sleep(rng.uniform(0.0, PER_KILL * GAP_S))
            kill_leader()
            for _ in range(round_kills - 1):
                time.sleep(rng.uniform(0.0, TAKEOVER_S))
                kill_leader()
        got = settled()
        assert [c for c, n in Counter(got).items() if n != 1] == []
        phases["kills"] = time.monotonic() - t1
        group.start()  # a standby for the frozen leader
        group.wait_subscribed()

        # -- SIGSTOP the leader past its lease, a burst meanwhile, then SIGCONT ---------------
        t1 = time.monotonic()
        lease = group.lease()
        assert lease is not None
        term, leader = lease[0], lease[1]
        os.kill(leader, signal.SIGSTOP)
        stopped_at = time.monotonic()
        new_term, _ = group.wait_term_above(term)
        gaps.append(time.monotonic() - stopped_at)
        player.play_to(player.played + PER_KILL)
        settled()
        os.kill(leader, signal.SIGCONT)  # it still holds its frames and its old term
        deadline = time.monotonic() + 30
        while not any(
            r["role"] == "stepped down" and r["holder"].split(":")[1] == str(leader)
            for r in group.roles()
        ):
            assert time.monotonic() < deadline, "the frozen leader did not step down"
            time.sleep(0.05)
        frozen = leader
        term, leader = group.wait_term_above(new_term - 1)
        _wait_role(group, frozen, False)  # back to standby, and it says so
        phases["stop"] = time.monotonic() - t1

        # -- PostgreSQL stopped under both for longer than the lease, then started --------------
        t1 = time.monotonic()
        before = settled()
        pg.stop("immediate")  # every connection cut, as a crash would
        stopped_at = time.monotonic()
        player.play_to(player.played + 2)  # bursts while no lease can be proven
        player.wait()
        while time.monotonic() < stopped_at + LEASE_S + RENEW_S:
            time.sleep(0.05)  # past any lease: a sender now would be a leader nobody elected
        assert exchange.client_ids() == before  # nobody sent while the database was away
        pg.start()
        term, leader = group.wait_term_above(term)  # the lease ran out: a new term
        gaps.append(time.monotonic() - stopped_at)
        counts["database outages"] += 1
        player.play_to(player.played + PER_KILL)
        got = settled()
        phases["database"] = time.monotonic() - t1
        last = group.lease()
        assert last is not None
        counts["takeovers"] = last[0] - first
    finally:
        group.close()
        exchange.close()
        zygote.close()
        if not pg.running:  # the other tests share the server
            pg.start()

    done = player.played
    expected = _expected_client_ids(player.sent[:done])
    seen = Counter(got)
    counts["orders"] = len(got)
    counts["duplicates"] = sum(n - 1 for n in seen.values() if n > 1)
    counts["losses"] = sum(1 for c in expected if seen[c] == 0)
    longest = max(gaps[: KILLS + 1])  # the outage's gap is the outage itself
    print(
        f"\nha failover: kills {counts['kills']}, takeovers {counts['takeovers']}, orders "
        f"{counts['orders']} (expected {done}), duplicates {counts['duplicates']}, losses "
        f"{counts['losses']}, longest gap without a leader {longest:.2f} s, database "
        f"outage {gaps[-1]:.2f} s to a new leader (lease_s {LEASE_S} + renew_s {RENEW_S}); "
        f"{len(group.pids)} processes; phases "
        + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
    )
    assert counts["duplicates"] == 0 and counts["losses"] == 0
    assert set(got) == set(expected)  # nothing the detector did not ask for
    assert counts["kills"] == KILLS and counts["takeovers"] >= KILLS + 2
    assert longest <= LEASE_S + RENEW_S + SLACK_S, gaps
