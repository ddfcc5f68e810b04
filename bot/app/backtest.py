"""`liqguard backtest`'s work: the real replay pipeline over episodes x settings, in a pool.

- Episode, bundled_episodes, parse_episode (a YAML/TOML manifest or TAPE:PRICES)
- parse_sweep / apply_path / settings_grid: any config path, the grid the product of sweeps
- run_one(episode, settings, ...) -> RunFigures: wiring.build + runner.run_replay, unpaced,
  the same orchestrator, strategies, risk gate and paper broker as `liqguard replay`; each
  confirm step answered by its on_timeout at its deadline in simulated time (DeadlineApprover)
  or by --assume; its own journal (a temporary SQLite file)
- run_backtest(...): the runs in a process pool, each worker parsing a tape once
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import sys
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from loguru import logger
from pydantic import ValidationError

from bot.app.runner import run_replay
from bot.app.wiring import build
from bot.approvals import AutoApprover
from bot.approvals.deadline import DeadlineApprover
from bot.brokers.options_model import is_option_symbol
from bot.clock import SimClock
from bot.config.errors import ConfigError, explain
from bot.config.settings import Settings
from bot.detector.batch import rule_window
from bot.detector.columns import TapeColumns
from bot.engine.summary import summarize
from bot.events import PriceTick
from bot.interfaces import Approver
from bot.secrets import Secrets
from bot.sources.files import open_tape
from bot.sources.prices import read_prices
from bot.sources.replay import Replayed, merge

Assume = Literal["approve", "reject"] | None
OBJECTIVES = ("pnl", "pnl_vs_untouched", "drawdown_saved", "saved_per_pnl")
BUNDLED = (
    ("2024-12-05 BTC flash crash", "binance-btcusdt_2024-12-04_06.csv",
     "BTCUSDT-5m_2024-12-04_06.csv"),
    ("2025-01-27 sell-off", "binance-allmarket_2025-01-26_27.csv.gz",
     "BTCUSDT-5m_2025-01-26_28.csv"),
)  # fmt: skip
SERIES_POINTS = 2_000  # window-sum points kept per run for the report's chart


@dataclass(frozen=True)
class Episode:
    name: str
    tape: Path
    prices: Path
    portfolio: Path | None = None  # replaces paper.balance_usd/positions (paper.portfolio_file)


def _bundled(name: str) -> Path:
    return Path(str(files("bot").joinpath("data", name)))


def bundled_episodes() -> list[Episode]:
    return [Episode(name, _bundled(tape), _bundled(prices)) for name, tape, prices in BUNDLED]


def parse_episode(text: str) -> Episode:
    """`TAPE:PRICES` or a manifest (.yaml/.yml/.toml: name, tape, prices, portfolio)."""
    path = Path(text)
    if path.suffix in (".yaml", ".yml", ".toml") and path.is_file():
        try:
            raw = path.read_text(encoding="utf-8")
            data = tomllib.loads(raw) if path.suffix == ".toml" else yaml.safe_load(raw)
        except (OSError, yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the episode manifest ({exc}).") from None
        if not isinstance(data, dict) or not {"tape", "prices"} <= set(data):
            raise ConfigError(
                f"{path}: an episode manifest needs `tape:` and `prices:` (paths, relative to "
                "the manifest), and may have `name:` and `portfolio:`."
            )
        unknown = set(data) - {"name", "tape", "prices", "portfolio"}
        if unknown:
            raise ConfigError(
                f"{path}: unknown key(s) {', '.join(sorted(unknown))} in the manifest."
            )
        here = path.parent
        portfolio = data.get("portfolio")
        return Episode(
            str(data.get("name") or path.stem),
            here / str(data["tape"]),
            here / str(data["prices"]),
            here / str(portfolio) if portfolio else None,
        )
    tape, sep, prices = text.rpartition(":")
    if not sep or not tape or not prices:
        raise ConfigError(
            f"episode {text!r}: give TAPE:PRICES (a tape and its kline CSV) or a manifest "
            "file ending in .yaml, .yml or .toml."
        )
    return Episode(Path(tape).name, Path(tape), Path(prices))


# -- settings grid ---------------------------------------------------------------------------


def _value(text: str) -> Any:
    s = text.strip()
    for kind in (int, float):
        try:
            return kind(s)
        except ValueError:
            pass
    return yaml.safe_load(s) if s else s


def parse_sweep(text: str) -> tuple[str, list[str]]:
    """`rules[0].threshold_usd=1e6,2e6` -> (path, ["1e6", "2e6"]): values as typed (labels)."""
    path, sep, values = text.partition("=")
    if not sep or not path.strip() or not values.strip():
        raise ConfigError(
            f"--sweep {text!r}: write PATH=V1,V2,... (example: rules[0].threshold_usd=1e6,2e6)."
        )
    return path.strip(), [v.strip() for v in values.split(",")]


def _tokens(path: str) -> list[str | int]:
    out: list[str | int] = []
    for part in path.split("."):
        name, *indexes = part.split("[")
        if name:
            out.append(name)
        for ix in indexes:
            if not ix.endswith("]") or not ix[:-1].isdigit():
                raise ConfigError(f"--sweep path {path!r}: {part!r} is not name or name[i].")
            out.append(int(ix[:-1]))
    return out


def apply_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` (a.b[0].c, dict keys or list indexes) in the config data, in place."""
    node: Any = data
    tokens = _tokens(path)
    for n, tok in enumerate(tokens):
        last = n == len(tokens) - 1
        if isinstance(node, list):
            if not isinstance(tok, int) or not 0 <= tok < len(node):
                raise ConfigError(f"--sweep path {path!r}: no item {tok!r} at that place.")
            if last:
                node[tok] = value
            else:
                node = node[tok]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"--sweep path {path!r}: {tok!r} is below a value, not a section.")
        key: Any = tok if tok in node or str(tok) not in node else str(tok)
        if last:
            node[key] = value
        elif key in node:
            node = node[key]
        else:
            node[key] = {}
            node = node[key]


def settings_grid(
    base: Settings, sweeps: Sequence[tuple[str, list[str]]], source: str = "--sweep"
) -> list[tuple[dict[str, Any], Settings]]:
    """Every combination of the sweeps applied to `base` (no sweep: the base alone); the label
    keeps each value as typed, the config gets it as a number where it reads as one."""
    if not sweeps:
        return [({}, base)]
    out = []
    for combo in itertools.product(*[values for _, values in sweeps]):
        label = {path: v for (path, _), v in zip(sweeps, combo, strict=True)}
        data = base.model_dump(mode="json")
        for path, v in label.items():
            apply_path(data, path, _value(v))
        try:
            out.append((label, Settings.model_validate(data)))
        except ValidationError as exc:
            raise ConfigError(explain(exc, data, f"{source} {label}")) from None
    return out


# -- one run ---------------------------------------------------------------------------------


@dataclass
class RunFigures:
    """What one episode x setting did; the report and the CSV show these."""

    episode: str
    setting: dict[str, Any]
    pnl_usd: float
    untouched_pnl_usd: float
    drawdown_usd: float
    untouched_drawdown_usd: float
    fees_usd: float
    slippage_usd: float  # perps only: an option's fill has no underlying price to slip from
    option_premium_usd: float  # paid for puts (paper: the model's ask)
    option_returned_usd: float  # what the puts gave back: sold, settled, or still held at model
    anomalies_by_level: dict[int, int]
    calms: int
    actions: dict[str, int]  # "strategy status": count
    decisions_by: dict[str, int]
    orders_sent: int
    fills: int
    paper_liquidations: int
    untouched_liquidations: int
    first_anomaly_ms: int | None
    worst_price_ms: int | None
    false_alarms: int
    ladder: list[str]
    # for the charts
    prices: list[tuple[int, float]] = field(default_factory=list, repr=False)
    equity: list[tuple[int, float, float]] = field(default_factory=list, repr=False)
    window: list[tuple[int, float]] = field(default_factory=list, repr=False)
    marks: list[tuple[int, str, float, str]] = field(default_factory=list, repr=False)
    anomaly_points: list[tuple[int, int, float]] = field(default_factory=list, repr=False)
    base_threshold_usd: float = 0.0
    factor: float = 2.0

    @property
    def anomalies(self) -> int:
        return sum(self.anomalies_by_level.values())

    @property
    def pnl_vs_untouched_usd(self) -> float:
        return self.pnl_usd - self.untouched_pnl_usd

    @property
    def drawdown_saved_usd(self) -> float:
        return self.untouched_drawdown_usd - self.drawdown_usd

    @property
    def saved_per_pnl(self) -> float:
        """Drawdown saved per dollar of PnL given up (inf: nothing given up)."""
        given_up = self.untouched_pnl_usd - self.pnl_usd
        if given_up <= 0:
            return math.inf if self.drawdown_saved_usd > 0 else 0.0
        return self.drawdown_saved_usd / given_up

    @property
    def liquidations_avoided(self) -> int:
        return max(0, self.untouched_liquidations - self.paper_liquidations)

    @property
    def lead_time_s(self) -> float | None:
        if self.first_anomaly_ms is None or self.worst_price_ms is None:
            return None
        return (self.worst_price_ms - self.first_anomaly_ms) / 1000

    def objective(self, name: str) -> float:
        return {
            "pnl": self.pnl_usd,
            "pnl_vs_untouched": self.pnl_vs_untouched_usd,
            "drawdown_saved": self.drawdown_saved_usd,
            "saved_per_pnl": self.saved_per_pnl,
        }[name]


@dataclass(frozen=True)
class Options:
    assume: Assume = None
    move_pct: float = 2.0  # a false alarm: the price did not move this much against the side
    horizon_s: float = 6 * 3600.0  # ... within this long after the anomaly


_TAPES: dict[tuple[Path, Path], tuple[list[Replayed], list[PriceTick], TapeColumns]] = {}


def _load(episode: Episode) -> tuple[list[Replayed], list[PriceTick], TapeColumns]:
    """The merged events of an episode, parsed once per process."""
    key = (episode.tape, episode.prices)
    if key not in _TAPES:
        ticks = read_prices(episode.prices)
        liqs = list(open_tape(episode.tape))
        _TAPES[key] = (list(merge(liqs, ticks)), ticks, TapeColumns.from_liquidations(liqs))
    return _TAPES[key]


def _quiet_logs() -> None:
    logger.remove()
    logger.add(sys.stderr, level="ERROR")  # workers: only what went wrong


def run_one(episode: Episode, settings: Settings, options: Options) -> RunFigures:
    """One episode through the real pipeline with one setting."""
    events, ticks, columns = _load(episode)
    if episode.portfolio is not None:
        paper = settings.paper.model_copy(update={"portfolio_file": str(episode.portfolio)})
        settings = settings.model_copy(update={"paper": paper})
    # A rehearsal pages nobody: no Telegram, no webhooks.
    settings = settings.model_copy(update={"telegram": None, "webhooks": ()})
    approver: Approver = (
        DeadlineApprover() if options.assume is None else AutoApprover(options.assume == "approve")
    )
    with tempfile.TemporaryDirectory(prefix="liqguard-backtest-") as tmp:
        journal = str(Path(tmp) / "journal.sqlite")
        return asyncio.run(
            _run(episode, settings, options, approver, journal, events, ticks, columns)
        )


async def _run(
    episode: Episode,
    settings: Settings,
    options: Options,
    approver: Approver,
    journal_url: str,
    events: list[Replayed],
    ticks: list[PriceTick],
    columns: TapeColumns,
) -> RunFigures:
    rt = build(
        settings,
        Secrets(_env_file=None),  # type: ignore[call-arg]
        mode="replay",
        identity=f"backtest|{episode.tape}|{settings.model_dump_json()}",
        journal_url=journal_url,
        approver=approver,
        notifiers=[],
    )
    orch, clock, base = rt.orchestrator, rt.clock, rt.baseline
    assert isinstance(clock, SimClock) and orch.paper is not None and base is not None
    paper = orch.paper
    start_positions = len(base.positions)
    equity: list[tuple[int, float, float]] = []

    def on_event(_n: int, ev: Replayed) -> None:
        if isinstance(ev, PriceTick):
            equity.append((ev.ts_ms, paper.equity_usd(), base.equity_usd()))

    try:
        await run_replay(orch, clock, events, None, False, on_event)
        summary = summarize(rt.journal, rt.session)
        entries = rt.journal.find(kinds=["fill", "action_end", "anomaly"])
    finally:
        await rt.close()
    prices = [(t.ts_ms, t.price) for t in ticks]
    strategy_of = {
        str(e["payload"].get("action_id")): str(e["payload"].get("strategy"))
        for e in entries
        if e["kind"] == "action_end"
    }
    marks, slippage = [], 0.0
    price_ts = np.array([t for t, _ in prices], dtype=np.int64)
    price_px = np.array([p for _, p in prices], dtype=np.float64)
    anomaly_points: list[tuple[int, int, float]] = []
    sides: list[tuple[int, bool]] = []  # (ts, long side threatened)
    for e in entries:
        p = e["payload"]
        if e["kind"] == "fill":
            ts = int(p["ts_ms"])
            action = str(p.get("action_id") or str(p["client_id"]).rsplit("-", 1)[0])
            marks.append((ts, str(p["side"]), float(p["price"]), strategy_of.get(action, "")))
            i = int(np.searchsorted(price_ts, ts, side="right")) - 1
            if i >= 0 and not is_option_symbol(str(p["symbol"])):
                sign = 1.0 if p["side"] == "buy" else -1.0
                slippage += sign * (float(p["price"]) - price_px[i]) * float(p["amount"])
        elif e["kind"] == "anomaly":
            window_usd = int(p["window_cents"]) / 100
            anomaly_points.append((int(p["ts_ms"]), int(p["level"]), window_usd))
            sides.append((int(p["ts_ms"]), int(p["long_cents"]) >= int(p["short_cents"])))
    first = min((t for t, _ in sides), default=None)
    worst = _worst_point(price_ts, price_px, first, sides[0][1] if sides else True)
    rule = settings.rules[0]
    return RunFigures(
        episode=episode.name,
        setting={},
        pnl_usd=paper.pnl_usd(),
        untouched_pnl_usd=base.pnl_usd(),
        drawdown_usd=paper.max_drawdown_usd,
        untouched_drawdown_usd=base.max_drawdown_usd,
        fees_usd=summary.fees_usd,
        slippage_usd=slippage,
        option_premium_usd=summary.option_premium_usd,
        option_returned_usd=(
            summary.option_sold_usd + summary.option_settled_usd + summary.option_held_usd
        ),
        anomalies_by_level=dict(sorted(summary.anomalies_by_level.items())),
        calms=summary.calms,
        actions={f"{s} {st}": n for (s, st), n in sorted(summary.actions_by_status.items())},
        decisions_by=dict(summary.decisions_by),
        orders_sent=summary.orders_sent,
        fills=summary.fills,
        paper_liquidations=summary.paper_liquidations,
        untouched_liquidations=start_positions - len(base.positions),
        first_anomaly_ms=first,
        worst_price_ms=worst,
        false_alarms=_false_alarms(price_ts, price_px, sides, options),
        ladder=list(summary.ladder),
        prices=prices,
        equity=equity,
        window=_window_points(columns, settings),
        marks=marks,
        anomaly_points=anomaly_points,
        base_threshold_usd=rule.threshold_usd,
        factor=rule.factor,
    )


def _worst_point(
    ts: np.ndarray, px: np.ndarray, after_ms: int | None, long_side: bool
) -> int | None:
    """The time of the price's worst point (for the threatened side) after the first anomaly."""
    if after_ms is None or not len(ts):
        return None
    start = int(np.searchsorted(ts, after_ms, side="left"))
    if start >= len(ts):
        return None
    tail = px[start:]
    i = int(np.argmin(tail) if long_side else np.argmax(tail))
    return int(ts[start + i])


def _false_alarms(
    ts: np.ndarray, px: np.ndarray, sides: list[tuple[int, bool]], options: Options
) -> int:
    """Anomalies after which the price did not move against the threatened side by move_pct
    within the horizon (longs liquidated: the price did not fall; shorts: did not rise)."""
    count = 0
    horizon_ms = round(options.horizon_s * 1000)
    for at, long_side in sides:
        i = int(np.searchsorted(ts, at, side="right")) - 1
        j = int(np.searchsorted(ts, at + horizon_ms, side="right"))
        if i < 0 or j <= i + 1:
            count += 1  # no price after it: nothing showed the move
            continue
        ref, path = px[i], px[i + 1 : j]
        moved = (
            (path.min() <= ref * (1 - options.move_pct / 100))
            if long_side
            else (path.max() >= ref * (1 + options.move_pct / 100))
        )
        count += 0 if moved else 1
    return count


def _window_points(columns: TapeColumns, settings: Settings) -> list[tuple[int, float]]:
    win = rule_window(columns, settings.rules[0])
    if win is None:
        return []
    step = max(1, len(win.ts) // SERIES_POINTS)
    keep = np.arange(0, len(win.ts), step)
    return list(
        zip(win.clock[keep].tolist(), (win.window[keep].astype(np.float64) / 100).tolist(),
            strict=True)
    )  # fmt: skip


# -- the pool --------------------------------------------------------------------------------


def _job(
    episode: Episode, label: dict[str, Any], settings: Settings, options: Options
) -> RunFigures:
    _quiet_logs()
    figures = run_one(episode, settings, options)
    figures.setting = label
    return figures


def run_backtest(
    episodes: Sequence[Episode],
    grid: Sequence[tuple[dict[str, Any], Settings]],
    options: Options,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[RunFigures]:
    """Every episode x setting; results in (setting, episode) order."""
    work = [(s, e) for s in range(len(grid)) for e in range(len(episodes))]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(work)))
    results: dict[tuple[int, int], RunFigures] = {}
    if jobs == 1:
        for n, (s, e) in enumerate(work, 1):
            results[(s, e)] = _job(episodes[e], grid[s][0], grid[s][1], options)
            if progress:
                progress(n, len(work))
    else:
        # Episodes first within a worker's queue order, so each worker parses few tapes.
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {
                pool.submit(_job, episodes[e], grid[s][0], grid[s][1], options): (s, e)
                for e in range(len(episodes))
                for s in range(len(grid))
            }
            for n, fut in enumerate(as_completed(futures), 1):
                results[futures[fut]] = fut.result()
                if progress:
                    progress(n, len(work))
    return [results[k] for k in work]
