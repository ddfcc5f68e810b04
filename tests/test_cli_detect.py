"""`liqguard detect` through typer's CliRunner: output forms, summary, exit codes."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.cli.detect import parse_duration
from bot.config.rules import RuleConfig
from bot.detector import Detector, anomaly_to_json
from bot.events import Liquidation
from bot.money import usd_to_cents
from bot.sources import open_tape

ROOT = Path(__file__).parent.parent
TAPE = ROOT / "bot" / "data" / "binance-btcusdt_2024-12-04_06.csv"
FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def run(*args: str | Path) -> Any:
    return runner.invoke(app, ["detect", *map(str, args)])


def expected_json(events: Iterable[Liquidation], rule: RuleConfig) -> list[dict[str, Any]]:
    detector = Detector([rule])
    return [anomaly_to_json(a) for liq in events for a in detector.on_liquidation(liq)]


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def largest_window_cents(events: list[Liquidation], window_ms: int) -> tuple[int, int]:
    """Brute force over the definition: sum of (t - W, t] at each event time t, in order."""
    best = (0, 0)
    for i, e in enumerate(events):
        total = sum(
            usd_to_cents(x.notional_usd) for x in events[: i + 1] if x.ts_ms > e.ts_ms - window_ms
        )
        best = max(best, (total, -e.ts_ms))
    return best[0], -best[1]


def test_default_rule_on_the_bundled_tape_prints_table_and_summary() -> None:
    result = run(TAPE)
    assert result.exit_code == 0, result.stderr
    events = list(open_tape(TAPE))
    found = expected_json(events, RuleConfig())
    anomalies = [a for a in found if a["type"] == "anomaly"]
    assert "Liquidation anomalies" in result.stdout
    assert result.stdout.count("\u2502 all ") == len(found)  # one table row per event
    err = result.stderr
    assert f"events read: {len(events):,} from 1 file(s); rejected: 0; late: 0" in err
    levels: dict[int, int] = {}
    for a in anomalies:
        levels[a["level"]] = levels.get(a["level"], 0) + 1
    by_level = ", ".join(f"level {k}: {v}" for k, v in sorted(levels.items()))
    assert f"anomalies: {len(anomalies)} ({by_level}); calm: {len(found) - len(anomalies)}" in err
    # the tape is sorted, so a brute-force rolling sum finds the same peak
    cents, ts_ms = largest_window_cents(events[::1], 3_600_000)
    assert f"largest 1h window sum (rule all): ${cents / 100:,.2f}" in err
    assert f"at {datetime.fromtimestamp(ts_ms / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC" in err


def test_json_lines_only_on_stdout_in_the_exact_form() -> None:
    result = run(TAPE, "--json")
    assert result.exit_code == 0
    assert json_lines(result.stdout) == expected_json(open_tape(TAPE), RuleConfig())
    assert "events read" in result.stderr and "events read" not in result.stdout


def test_flags_define_the_rule() -> None:
    result = run(
        TAPE,
        "--json",
        "--threshold",
        "250000",
        "--window",
        "30m",
        "--side",
        "long",
        "--symbol",
        "BTC",
        "--factor",
        "3",
        "--escalation-window",
        "1h",
    )
    assert result.exit_code == 0, result.stderr
    rule = RuleConfig(
        threshold_usd=250_000,
        window_s=1800,
        sides=("long",),
        symbols=("BTC",),
        factor=3,
        escalation_window_s=3600,
    )
    expected = expected_json(open_tape(TAPE), rule)
    assert expected and json_lines(result.stdout) == expected


def test_config_rules_with_a_flag_applied_to_each(tmp_path: Path) -> None:
    config = tmp_path / "liqguard.yaml"
    config.write_text(
        "rules:\n  - name: longs\n    sides: [long]\n  - name: shorts\n    sides: [short]\n"
    )
    result = run(TAPE, "--json", "--config", config, "--threshold", "500000")
    assert result.exit_code == 0, result.stderr
    rules = [
        RuleConfig(name="longs", sides=("long",), threshold_usd=500_000),
        RuleConfig(name="shorts", sides=("short",), threshold_usd=500_000),
    ]
    detector = Detector(rules)
    expected = [anomaly_to_json(a) for liq in open_tape(TAPE) for a in detector.on_liquidation(liq)]
    assert {a["rule"] for a in expected} == {"longs", "shorts"}
    assert json_lines(result.stdout) == expected


def test_config_error_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "liqguard.yaml"
    config.write_text("rules:\n  - name: big\n    threshold_usd: -5\n")
    result = run(TAPE, "--config", config)
    assert result.exit_code == 2
    assert "rules[0].threshold_usd: value -5" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--threshold", "-5"], "--threshold: value -5.0"),
        (["--window", "an hour"], "--window"),
        (["--side", "both"], "--side"),
        (["--format", "xml"], "--format"),
        (["--factor", "1"], "--factor: value 1.0"),
    ],
)
def test_bad_options_exit_2(args: list[str], named: str) -> None:
    result = run(TAPE, *args)
    assert result.exit_code == 2
    assert named in result.stderr


def test_unreadable_or_not_a_tape_exits_1_with_one_sentence(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("dear diary,\ntoday the market fell\n")
    for path, words in (
        (junk, "is not a liquidation tape"),
        (tmp_path / "gone.csv", "cannot be read"),
    ):
        result = run(TAPE, path)
        assert result.exit_code == 1
        assert words in result.stderr
        assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_rejected_rows_are_counted_with_reasons_and_line_numbers() -> None:
    result = run(FIXTURES / "bad_rows.csv")
    assert result.exit_code == 0
    tape = open_tape(FIXTURES / "bad_rows.csv")
    list(tape)
    assert f"rejected: {tape.stats.rejected}" in result.stderr
    first = tape.stats.first_rejections
    for rej in first[:5]:
        assert f"rejected bad_rows.csv line {rej.line}: {rej.reason}" in result.stderr
    assert f"... and {tape.stats.rejected - 5} more" in result.stderr


def test_gzip_input_prints_the_same(tmp_path: Path) -> None:
    packed = tmp_path / "tape.csv.gz"
    packed.write_bytes(gzip.compress(TAPE.read_bytes()))
    assert run(packed, "--json").stdout == run(TAPE, "--json").stdout


def test_binance_csv_with_and_without_header(tmp_path: Path) -> None:
    source = FIXTURES / "binance_liquidations.csv"
    bare = tmp_path / "bare.csv"
    bare.write_text("".join(source.read_text().splitlines(keepends=True)[1:]))
    rule = RuleConfig(threshold_usd=100)
    expected = expected_json(open_tape(source), rule)
    assert expected
    for path in (source, bare):
        result = run(path, "--json", "--threshold", "100")
        assert result.exit_code == 0, result.stderr
        assert json_lines(result.stdout) == expected


def test_jsonl_raw_messages_and_venue_filter() -> None:
    path = FIXTURES / "raw_messages.jsonl"
    result = run(path, "--json", "--threshold", "1000", "--venue", "okx")
    assert result.exit_code == 0, result.stderr
    expected = expected_json(open_tape(path), RuleConfig(threshold_usd=1000, venues=("okx",)))
    assert expected and json_lines(result.stdout) == expected
    assert "rejected: 2" in result.stderr and "control messages skipped: 2" in result.stderr


def test_several_files_are_read_in_order() -> None:
    result = run(FIXTURES / "binance_liquidations.csv", TAPE, "--json")
    assert result.exit_code == 0
    events = [*open_tape(FIXTURES / "binance_liquidations.csv"), *open_tape(TAPE)]
    assert json_lines(result.stdout) == expected_json(events, RuleConfig())
    assert "from 2 file(s)" in result.stderr


def test_files_named_out_of_time_order_are_read_in_time_order(tmp_path: Path) -> None:
    later = tmp_path / "later.csv"  # the 2024 tape moved a week on: named first, read second
    lines = TAPE.read_text().splitlines()
    week_ms = 7 * 86_400_000
    later.write_text("\n".join([lines[0], *(_shift(line, week_ms) for line in lines[1:])]) + "\n")
    result = run(later, TAPE, "--json")
    assert result.exit_code == 0
    events = [*open_tape(TAPE), *open_tape(later)]
    assert json_lines(result.stdout) == expected_json(events, RuleConfig())
    assert f"tapes read in time order: {TAPE.name}, later.csv" in result.stderr
    assert "late: 0" in result.stderr


def _shift(line: str, ms: int) -> str:
    ts, rest = line.split(",", 1)
    return f"{int(ts) + ms},{rest}"


@pytest.mark.parametrize(
    ("text", "seconds"), [("3600", 3600), ("1h", 3600), ("90m", 5400), ("1h30m", 5400), ("45s", 45)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "1 hour", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("name", ["tape.csv", "bad_rows.csv", "tape.csv.gz", "binance.csv"])
def test_columnar_and_streaming_paths_print_the_same(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.app.detect as batch

    sources = {
        "tape.csv": TAPE.read_bytes(),
        "bad_rows.csv": (FIXTURES / "bad_rows.csv").read_bytes(),
        "tape.csv.gz": gzip.compress(TAPE.read_bytes()),
        "binance.csv": (FIXTURES / "binance_liquidations.csv").read_bytes(),
    }
    path = tmp_path / name
    path.write_bytes(sources[name])
    calls: list[int] = []
    real = batch.detect_file_fast

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "detect_file_fast", spy)
    for args in (["--json"], ["--threshold", "300000"]):
        fast = run(path, *args)
        assert bool(calls) == (name != "binance.csv")  # the columnar path takes unified CSV
        with monkeypatch.context() as m:
            m.setattr(batch, "detect_file_fast", _unsupported)
            slow = run(path, *args)
        assert fast.exit_code == slow.exit_code == 0
        assert (fast.stdout, fast.stderr) == (slow.stdout, slow.stderr)


def _unsupported(*args: Any, **kwargs: Any) -> Any:
    from bot.sources.columnar import UnsupportedFastPath

    raise UnsupportedFastPath("streaming only")
