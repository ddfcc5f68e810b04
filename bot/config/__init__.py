"""Configuration: one validated file (`liqguard.yaml`) plus secrets from the environment.

Each section lives in its own module; this one joins them and loads the file.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ConfigError", "RuleConfig", "Settings", "load_settings"]
_HOME = {"ConfigError": "errors", "RuleConfig": "rules", "Settings": "settings"}


def __getattr__(name: str) -> Any:
    # Loaded on use: `liqguard detect` needs the rules, not every settings model (start-up).
    if name in __all__:
        return getattr(importlib.import_module(f"bot.config.{_HOME.get(name, 'loader')}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
