"""Load `liqguard.yaml` and the secrets; turn validation failures into one clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.config.settings import Settings


class ConfigError(Exception):
    """A configuration problem a person must fix; the message names field, value and fix."""


def _format_location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _lookup(data: Any, loc: tuple[int | str, ...]) -> tuple[bool, Any]:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, data


def explain(error: ValidationError, data: Any, source: str) -> str:
    """One line per problem: where, what was given, why, and what to do."""
    lines = [f"{source}: invalid configuration ({error.error_count()} problem(s))"]
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function")))
        where = _format_location(loc)
        found, value = _lookup(data, loc)
        given = f"value {value!r}" if found else "missing or not allowed here"
        reason = item["msg"]
        if item["type"] == "extra_forbidden":
            given = f"unknown key {loc[-1]!r}"
            reason = "not a setting liqguard knows; check the spelling against the README"
        lines.append(f"  - {where}: {given}: {reason}")
    lines.append("Fix the file (see the README's configuration reference) and start again.")
    return "\n".join(lines)


def load_settings(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Read and validate the config file (or defaults when `path` is None)."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read the config file ({exc.strerror}).") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections, not a list.")
        data = loaded
    if overrides:
        data = {**data, **overrides}
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain(exc, data, source)) from None
