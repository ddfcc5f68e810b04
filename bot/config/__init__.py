"""Configuration: one validated file (`liqguard.yaml`) plus secrets from the environment.

Each section lives in its own module; this one joins them and loads the file.
"""

from bot.config.errors import ConfigError
from bot.config.loader import load_settings
from bot.config.rules import RuleConfig
from bot.config.settings import Settings

__all__ = ["ConfigError", "RuleConfig", "Settings", "load_settings"]
