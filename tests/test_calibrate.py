"""`liqguard calibrate` on the bundled real tapes: exact counts, the preview `detect` then fires,
--write accepted by --config, --by groups, gaps and floors, targets, charts, exit codes."""

from __future__ import annotations

import gzip
import itertools
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bot.app.calibrate import CalibrateRequest, read_columns, run_calibrate
from bot.cli import app
from bot.config.loader import load_settings
from bot.config.rules import RuleConfig
from bot.detector import Detector, Thresholds
from bot.detector.batch import escalate, rule_window
from bot.detector.calibrate import MANTISSAS, calm_index, candidate_grid, escalation_counts
from bot.events import Anomaly
from bot.notify.charts import PNG_SIGNATURE
from bot.sources import open_tape

DATA = Path(__file__).parent.parent / "bot" / "data"
AAVE = DATA / "aave-v2_2021-05-12_26.csv.gz"
COMPOUND = DATA / "compound-v3_2025-10-09_12.csv"
AAVE_BTC = DATA / "aave-btc-collateral_2025-10-09_12.csv"
BINANCE_ALL = DATA / "binance-allmarket_2025-01-26_27.csv.gz"
BTCUSDT = DATA / "binance-btcusdt_2024-12-04_06.csv"
runner = CliRunner()


def invoke(*args: str | Path) -> Any:
    return runner.invoke(app, [*map(str, args)])


def detect_json(*args: str | Path) -> list[dict[str, Any]]:
    result = invoke("detect", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def preview_count(stdout: str) -> list[tuple[str, int]]:
    """(rule, anomalies) of each trigger preview printed."""
    rules = re.findall(r"^rule (\S+)$", stdout, flags=re.M)
    counts = [int(n) for n in re.findall(r"trigger preview: (\d+) anomalies", stdout)]
    return list(zip(rules, counts, strict=True))


def test_recommended_threshold_fed_to_detect_fires_exactly_the_preview(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    result = invoke("calibrate", AAVE, "--alerts-per-month", "20", "--write", rules)
    assert result.exit_code == 0, result.stderr
    m = re.search(r"recommended base threshold: \$([\d,]+)", result.stdout)
    assert m is not None
    threshold = float(m.group(1).replace(",", ""))
    [(rule, previewed)] = preview_count(result.stdout)
    assert rule == "all" and previewed > 0
    # Both ways of feeding it back: the written rules file and the --threshold flag.
    by_config = detect_json(AAVE, "--config", rules)
    by_flag = detect_json(AAVE, "--threshold", f"{threshold:.0f}")
    assert by_config == by_flag
    fired = [e for e in by_config if e["type"] == "anomaly"]
    assert len(fired) == previewed
    # The preview rows are detect's rows: the first anomaly's time and window sum are printed.
    first = fired[0]
    assert first["time"][:19].replace("T", " ") in result.stdout
    assert f"{round(first['window_usd']):,}" in result.stdout
    assert {e["threshold_usd"] for e in fired if e["level"] == 1} == {threshold}


def test_every_candidate_counts_what_the_streaming_detector_emits() -> None:
    res = run_calibrate([open_tape(AAVE)], [RuleConfig()], CalibrateRequest())
    [group] = res.groups
    events = list(open_tape(AAVE))
    assert len(group.candidates) > 20
    for cand in [*group.candidates[::7], group.candidates[-1]]:
        det = Detector([RuleConfig(threshold_usd=cand.threshold_usd)])
        found = [a for e in events for a in det.on_liquidation(e)]
        levels: dict[int, int] = {}
        for a in found:
            if isinstance(a, Anomaly):
                levels[a.level] = levels.get(a.level, 0) + 1
        assert cand.by_level == levels, cand.threshold_usd
        assert cand.calms == len(found) - sum(levels.values())
    assert group.candidates[-1].alerts == 0  # the grid ends above the peak


@pytest.mark.parametrize("tape", [AAVE, BTCUSDT, BINANCE_ALL])
@pytest.mark.parametrize(
    "rule",
    [RuleConfig(), RuleConfig(factor=1.5, window_s=900, escalation_window_s=600, sides=("long",))],
)
def test_counting_walk_equals_the_batch_detector_walk(tape: Path, rule: RuleConfig) -> None:
    """calibrate's counting walk against batch.escalate, every candidate of a wide grid."""
    cols, _ = read_columns([open_tape(tape)])
    win = rule_window(cols, rule)
    assert win is not None
    calm_at = calm_index(win, rule.escalation_window_ms)
    grid = candidate_grid(int(np.percentile(win.window, 5)), win.peak[0])
    for t in grid:
        th = Thresholds(t, rule.factor)
        steps = escalate(win, th, rule.escalation_window_ms)
        levels = Counter(s.level for s in steps if s.level)
        calms = sum(1 for s in steps if not s.level)
        assert escalation_counts(win, th, calm_at) == (dict(levels), calms), t


def test_recommendation_is_the_lowest_candidate_within_the_alert_budget() -> None:
    res = run_calibrate([open_tape(AAVE)], [RuleConfig()], CalibrateRequest(alerts_per_month=30))
    [g] = res.groups
    assert g.recommended is not None
    ok = [c for c in g.candidates if c.per_month <= 30]
    assert g.recommended == min(ok, key=lambda c: c.threshold_usd)
    below = [c for c in g.candidates if c.threshold_usd < g.recommended.threshold_usd]
    assert below and all(c.per_month > 30 for c in below)
    # On-chain: no gaps, every hour of the span observed; a 30-day month is 720 hours.
    assert g.hours.observed_hours == len(g.hours.gap)
    assert g.recommended.per_month == pytest.approx(
        g.recommended.alerts / g.hours.observed_hours * 720
    )


def test_grid_steps_are_at_most_ten_percent() -> None:
    grid = candidate_grid(12_345_00, 74_867_642_63)
    assert grid[0] <= 12_345 and grid[-1] * 100 > 74_867_642_63
    assert all(b / a <= 1.1 + 1e-9 for a, b in itertools.pairwise(grid))
    assert all(b / a <= 1.1 + 1e-9 for a, b in itertools.pairwise([*MANTISSAS, 10.0]))


def test_by_venue_writes_rules_that_config_accepts_and_detect_matches(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    tapes = (AAVE, AAVE_BTC, COMPOUND)
    result = invoke("calibrate", *tapes, "--by", "venue", "--alerts-per-month", "60",
                    "--write", rules)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    written = load_settings(rules).rules
    names = {r.name for r in written}
    assert names == {"aave-v2", "aave-v3", "compound-v3-ethereum"}
    assert all(r.venues == (r.name,) for r in written)
    assert len({r.threshold_usd for r in written}) == 3  # one threshold per venue
    fired = [e for e in detect_json(*tapes, "--config", rules) if e["type"] == "anomaly"]
    for rule, previewed in preview_count(result.stdout):
        assert sum(1 for e in fired if e["rule"] == rule) == previewed
    text = yaml.safe_load(rules.read_text())
    assert set(text) == {"rules"}


def test_by_source_groups_venue_families(tmp_path: Path) -> None:
    res = run_calibrate([open_tape(COMPOUND)], [RuleConfig()], CalibrateRequest(by="source"))
    [g] = res.groups
    assert g.rule.name == "compound" and g.rule.venues == ("compound",)
    assert g.events == 29


def test_floor_and_gaps_on_the_binance_capture() -> None:
    result = invoke("calibrate", BINANCE_ALL)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "floor: The Binance part of this sum is a floor" in out
    # Silent from 01-26 17:14 to 01-27 16:52: the whole hours between are gaps, not calm.
    assert "gaps: binance-usdm silent for 22 hours in 1 run(s)" in out
    assert "2025-01-26 18:00 -> 2025-01-27 16:00 (22 h)" in out
    res = run_calibrate([open_tape(BINANCE_ALL)], [RuleConfig()], CalibrateRequest())
    [g] = res.groups
    assert len(g.hours.gap) - g.hours.observed_hours == 22
    assert "only " in out and "hours observed" in out


def test_on_chain_silence_is_calm_not_a_gap() -> None:
    result = invoke("calibrate", COMPOUND, "--since", "2025-10-09", "--to", "2025-10-13")
    assert result.exit_code == 0, result.stderr
    assert "gaps" not in result.stdout and "floor" not in result.stdout
    assert "96 of 96 hours observed" in result.stdout  # 29 events in 14 hours; all 96 count
    res = run_calibrate([open_tape(COMPOUND)], [RuleConfig()], CalibrateRequest())
    assert int((res.groups[0].hours.sums == 0).sum()) > 0  # quiet hours inside the span too


def test_percentile_target(tmp_path: Path) -> None:
    res = run_calibrate([open_tape(AAVE)], [RuleConfig()], CalibrateRequest(percentile=99))
    [g] = res.groups
    assert g.recommended is not None and g.percentile_level_cents is not None
    assert g.recommended.threshold_usd * 100 >= g.percentile_level_cents
    lower = [c for c in g.candidates if c.threshold_usd < g.recommended.threshold_usd]
    assert lower and lower[-1].threshold_usd * 100 < g.percentile_level_cents
    result = invoke("calibrate", AAVE, "--percentile", "99")
    assert "at or above the p99 of hourly maxima" in result.stdout


def test_since_to_is_the_tape_cut_there(tmp_path: Path) -> None:
    cut = tmp_path / "cut.csv"
    lines = gzip.decompress(AAVE.read_bytes()).decode().splitlines()
    lo, hi = 1621382400000, 1621468800000  # 2021-05-19 00:00 .. 05-20 00:00 UTC
    cut.write_text(
        "\n".join([lines[0]] + [ln for ln in lines[1:] if lo <= int(ln.split(",")[0]) < hi]) + "\n"
    )
    budget = ("--alerts-per-month", "100")
    a = invoke("calibrate", AAVE, "--since", "2021-05-19", "--to", "2021-05-20T00:00Z", *budget)
    b = invoke("calibrate", cut, *budget)
    assert a.exit_code == 0 and b.exit_code == 0, a.stderr + b.stderr
    assert "span 2021-05-19 00:00 -> 2021-05-20 00:00 UTC (24 hours)" in a.stdout
    assert preview_count(a.stdout) == preview_count(b.stdout)
    tail = a.stdout[a.stdout.index("trigger preview") :]
    assert tail == b.stdout[b.stdout.index("trigger preview") :]


def test_chart_is_a_png(tmp_path: Path) -> None:
    png = tmp_path / "cal.png"
    result = invoke("calibrate", AAVE, COMPOUND, "--by", "source", "--chart", png)
    assert result.exit_code == 0, result.stderr
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert re.findall(r"^rule (\S+)$", result.stdout, flags=re.M) == ["aave", "compound"]


def test_several_rules_from_config(tmp_path: Path) -> None:
    cfg = tmp_path / "liqguard.yaml"
    cfg.write_text(
        "rules:\n  - name: longs\n    sides: [long]\n  - name: usdc\n    symbols: [USDC]\n"
    )
    rules = tmp_path / "rules.yaml"
    result = invoke("calibrate", AAVE, "--config", cfg, "--write", rules)
    assert result.exit_code == 0, result.stderr
    written = load_settings(rules).rules
    assert [r.name for r in written] == ["longs", "usdc"]
    assert written[0].sides == ("long",) and written[1].symbols == ("USDC",)
    fired = [e for e in detect_json(AAVE, "--config", rules) if e["type"] == "anomaly"]
    for rule, previewed in preview_count(result.stdout):
        assert sum(1 for e in fired if e["rule"] == rule) == previewed


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--by", "desk"], 2, "use one of rule, venue, symbol, source"),
        (["--alerts-per-month", "3", "--percentile", "99"], 2, "not both"),
        (["--percentile", "140"], 2, "between 0 and 100"),
        (["--since", "yesterday"], 2, "is not a time"),
        (["--since", "2021-05-20", "--to", "2021-05-19"], 2, "must be after --since"),
        (["--gap", "soon"], 2, "is not a duration"),
    ],
)
def test_usage_errors_exit_2(args: list[str], code: int, words: str) -> None:
    result = invoke("calibrate", AAVE, *args)
    assert result.exit_code == code
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_exits_2_and_names_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "liqguard.yaml"
    cfg.write_text("rules:\n  - name: x\n    threshold_usd: -5\n")
    result = invoke("calibrate", AAVE, "--config", cfg)
    assert result.exit_code == 2
    assert "threshold_usd" in result.stderr


def test_unreadable_tape_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    result = invoke("calibrate", bad)
    assert result.exit_code == 1
    assert "is not a liquidation tape" in result.stderr
    missing = invoke("calibrate", tmp_path / "nope.csv")
    assert missing.exit_code == 1
    assert "nope.csv cannot be read: No such file or directory." in missing.stderr


def test_unwritable_output_exits_1(tmp_path: Path) -> None:
    result = invoke("calibrate", COMPOUND, "--write", tmp_path / "no" / "dir" / "rules.yaml")
    assert result.exit_code == 1
    assert "cannot write the rules" in result.stderr
