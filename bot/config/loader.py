"""Load `liqguard.yaml` and the secrets; turn validation failures into one clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.config.errors import ConfigError, explain
from bot.config.settings import Settings


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
