"""Load `liqguard.yaml` and the secrets; turn validation failures into one clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.config.errors import ConfigError, explain
from bot.config.settings import Settings

MAX_CONFIG_CHARS = 1_000_000
MAX_CONFIG_NODES = 100_000  # after alias expansion: a real liqguard.yaml has a few hundred


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes `node` becomes once every alias is expanded (without expanding them)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_CONFIG_NODES  # a node that contains itself is too large
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = size = min(size, MAX_CONFIG_NODES + 1)
    return size


def _safe_load_bounded(text: str, path: Path) -> Any:
    """yaml.safe_load, refusing a document whose aliases expand past MAX_CONFIG_NODES."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return None
    if _expanded_size(root, {}) > MAX_CONFIG_NODES:
        raise ConfigError(
            f"{path}: its aliases expand to more than {MAX_CONFIG_NODES:,} values; a config "
            "file does not need that: write the values out"
        )
    return yaml.safe_load(text)


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
        if len(text) > MAX_CONFIG_CHARS:
            raise ConfigError(
                f"{p}: {len(text):,} characters is not a config file (the limit is "
                f"{MAX_CONFIG_CHARS:,}); give liqguard.yaml"
            )
        try:
            loaded = _safe_load_bounded(text, p)
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
