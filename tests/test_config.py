"""A bad config fails at start naming the field, the value and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, RuleConfig, load_settings
from bot.detector import Detector
from bot.events import Anomaly, Liquidation


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "liqguard.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_gives_an_exchange_rule_and_a_defi_rule() -> None:
    settings = load_settings(None)
    assert settings.mode == "paper"
    exchanges, defi = settings.rules
    # exchange streams at the calibrated $4M (docs/calibrating.md), lending at Santiment's $1M
    assert (exchanges.name, exchanges.threshold_usd) == ("exchanges", 4_000_000.0)
    assert (defi.name, defi.threshold_usd) == ("defi", 1_000_000.0)
    assert defi.venues == ("aave", "compound")
    for rule in settings.rules:
        assert (rule.window_ms, rule.factor, rule.escalation_window_ms) == (
            3_600_000,
            2.0,
            7_200_000,
        )


def test_default_rules_keep_each_venue_at_its_own_scale() -> None:
    """$2M of Binance liquidations in an hour is a normal exchange hour; $1M on Aave is not."""
    detector = Detector(load_settings(None).rules)

    def fired(venue: str, usd: float) -> list[str]:
        liq = Liquidation(ts_ms=1_000, venue=venue, symbol="BTCUSDT", side="long", price=1.0,
                          quantity=usd, notional_usd=usd, event_id=f"{venue}:{usd}")  # fmt: skip
        return [a.rule for a in detector.on_liquidation(liq) if isinstance(a, Anomaly)]

    assert fired("binance-usdm", 2_000_000) == []
    assert fired("aave-v3", 1_000_000) == ["defi"]
    assert fired("compound-v3-ethereum", 1_000_000) == ["defi"]  # $2M of lending: level 2
    assert fired("bybit", 2_000_000) == ["exchanges"]  # the exchange window reaches $4M


def test_rules_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules:\n  - name: btc\n    symbols: [BTC]\n    threshold_usd: 250000\n"
        "    sides: [long]\n  - name: all\n",
    )
    settings = load_settings(path)
    assert [r.name for r in settings.rules] == ["btc", "all"]
    assert settings.rules[0] == RuleConfig(
        name="btc", symbols=("BTC",), threshold_usd=250_000, sides=("long",)
    )


def test_bad_value_names_field_value_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - name: btc\n    factor: 0.5\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    text = str(err.value)
    assert "rules[0].factor" in text
    assert "0.5" in text
    assert "greater than 1" in text
    assert "README" in text


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - name: btc\n    treshold_usd: 5\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "rules[0].treshold_usd" in str(err.value)
    assert "unknown key 'treshold_usd'" in str(err.value)


def test_bad_side_and_duplicate_rule_names(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - name: a\n    sides: [up]\n")
    with pytest.raises(ConfigError, match=r"rules\[0\]\.sides\[0\]: value 'up'"):
        load_settings(path)
    path = write(tmp_path, "rules:\n  - name: a\n  - name: a\n")
    with pytest.raises(ConfigError, match="repeated: a"):
        load_settings(path)


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "rules: [\n"))


def test_option_iv_is_a_number_or_a_table_with_one_error_each(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("paper:\n  options:\n    iv: -1\n")
    with pytest.raises(ConfigError, match=r"paper\.options\.iv: value -1: .*0\.6 = 60%") as err:
        load_settings(path)
    assert "1 problem(s)" in str(err.value)
    path.write_text("paper:\n  options:\n    iv: {moneyness: [0.9, 1.0], days: [7], iv: [[0.6]]}\n")
    with pytest.raises(ConfigError, match=r"iv must have 1 row\(s\) .* of 2 value\(s\)") as err:
        load_settings(path)
    assert "1 problem(s)" in str(err.value)
    path.write_text(
        "paper:\n  options:\n    iv: {moneyness: [0.9, 1.0], days: [7, 30],"
        " iv: [[0.7, 0.6], [0.65, 0.55]]}\n    rate: 0.05\n"
    )
    options = load_settings(path).paper.options
    assert options.rate == 0.05 and not isinstance(options.iv, float)
    assert load_settings(None).paper.options.iv == 0.6
