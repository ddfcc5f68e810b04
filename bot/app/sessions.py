"""What identifies a session: the content of what it replays, never how a path was spelled.

- file_sha256: a file's content hash (tape, prices)
- settings_sha256 / redacted_settings: the settings as a digest, and in a form with every
  URL's credentials, path and query masked (what the journal may keep)
- replay_identity: the identity text of a replay and the record the journal keeps of it
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config.settings import Settings
from bot.logs import MASK, mask_url

# Field names whose values are credentials wherever they sit in the settings.
_SECRET_NAMES = ("token", "password", "secret", "api_key", "apikey", "passphrase")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def settings_sha256(settings: Settings) -> str:
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()


def redacted_settings(settings: Settings) -> dict[str, Any]:
    """The settings as JSON with no credential: URLs masked, secret-named fields replaced."""
    return _redact(settings.model_dump(mode="json"))


def _redact(value: Any, name: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, name) for v in value]
    if isinstance(value, str):
        if any(s in name.lower() for s in _SECRET_NAMES) and value:
            return MASK
        return mask_url(value) if "://" in value else value
    return value


@dataclass(frozen=True)
class Identity:
    text: str  # what the session id is derived from (hashes only)
    record: dict[str, Any]  # what the journal keeps about it (hashes and redacted settings)


def replay_identity(tape: Path, prices: Path | None, settings: Settings) -> Identity:
    tape_sha = file_sha256(tape)
    prices_sha = file_sha256(prices) if prices is not None else ""
    settings_sha = settings_sha256(settings)
    return Identity(
        text=f"replay|tape:{tape_sha}|prices:{prices_sha}|settings:{settings_sha}",
        record={
            "mode": "replay",
            "tape_sha256": tape_sha,
            "tape_name": tape.name,
            "prices_sha256": prices_sha,
            "prices_name": prices.name if prices is not None else "",
            "settings_sha256": settings_sha,
            "settings": redacted_settings(settings),
        },
    )


def secret_values(settings: Settings) -> list[str]:
    """Values of the settings that must never be printed: every URL with a path, query or
    password (webhook tokens, RPC keys) and its password alone, and secret-named fields."""
    out: list[str] = []
    _collect(settings.model_dump(mode="json"), "", out)
    return out


def _collect(value: Any, name: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _collect(v, str(k), out)
    elif isinstance(value, list):
        for v in value:
            _collect(v, name, out)
    elif isinstance(value, str) and value:
        if any(s in name.lower() for s in _SECRET_NAMES):
            out.append(value)
        elif "://" in value and mask_url(value) != value:
            out.append(value)
            netloc = value.partition("://")[2].split("/", 1)[0]
            auth = netloc.rpartition("@")[0]
            if ":" in auth:
                out.append(auth.split(":", 1)[1])
