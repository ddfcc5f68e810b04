"""A bad config fails at start naming the field, the value and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, RuleConfig, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "liqguard.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_gives_the_detector_defaults() -> None:
    settings = load_settings(None)
    assert settings.mode == "paper"
    (rule,) = settings.rules
    assert (rule.window_ms, rule.threshold_usd, rule.factor, rule.escalation_window_ms) == (
        3_600_000,
        1_000_000.0,
        2.0,
        7_200_000,
    )


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
