"""Signed single-use nonces for inline-button `callback_data`.

Telegram does not guarantee that a pressed message carried the data it sends back, so the
data is only a key into our own table: `<choice>.<nonce>.<tag>` (31 bytes, limit 64), where
the nonce is random, the tag an HMAC over nonce, choice, chat, message, subject and expiry,
and the table (kept in the Journal's state, so it survives a restart) says what the nonce is
for, whether it was used, and when it expires. Expiry is checked here, never trusted.

- NonceStore.issue(...) -> callback_data
- NonceStore.redeem(data, chat_id, message_id, now_ms) -> Redeemed | Refused
- NonceStore.revoke(subject)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from bot.interfaces import Journal

STATE_NAME = "telegram.nonces"
_MAX_DATA_BYTES = 64
_KEEP_USED_MS = 24 * 3600 * 1000  # Telegram keeps undelivered updates for 24 h


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Redeemed:
    subject: str  # what the button is about (an approval request id, "resume", ...)
    choice: str  # "y" / "n"
    purpose: str
    message_id: int


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Literal["malformed", "forged", "replayed", "expired"]
    text: str


class NonceStore:
    """Issue and redeem button nonces; the table persists through `journal.put_state`."""

    def __init__(self, key: bytes, journal: Journal) -> None:
        if len(key) < 16:
            raise ValueError(
                "LIQGUARD_APPROVAL_HMAC_KEY must be at least 16 bytes; "
                'generate one with: python -c "import secrets; print(secrets.token_hex(32))"'
            )
        self._key = key
        self._journal = journal
        state = journal.get_state(STATE_NAME) or {}
        self._table: dict[str, dict[str, Any]] = dict(state.get("nonces", {}))

    def _tag(self, nonce: str, choice: str, record: dict[str, Any]) -> str:
        msg = "|".join(
            str(x)
            for x in (
                nonce,
                choice,
                record["chat_id"],
                record["message_id"],
                record["purpose"],
                record["subject"],
                record["expires_ms"],
            )
        )
        return _b64(hmac.new(self._key, msg.encode(), hashlib.sha256).digest()[:12])

    def _save(self) -> None:
        self._journal.put_state(STATE_NAME, {"nonces": self._table})

    def issue(
        self,
        *,
        purpose: str,
        subject: str,
        choice: str,
        chat_id: int,
        message_id: int,
        expires_ms: int,
        now_ms: int,
    ) -> str:
        """Store a fresh nonce for one button and return its callback_data."""
        if len(choice) != 1 or choice == ".":
            raise ValueError("choice is one character")
        self._prune(now_ms)
        nonce = _b64(secrets.token_bytes(9))
        record = {
            "purpose": purpose,
            "subject": subject,
            "choice": choice,
            "chat_id": chat_id,
            "message_id": message_id,
            "expires_ms": expires_ms,
            "used": False,
        }
        self._table[nonce] = record
        self._save()
        data = f"{choice}.{nonce}.{self._tag(nonce, choice, record)}"
        assert len(data.encode()) <= _MAX_DATA_BYTES
        return data

    def redeem(self, data: str, chat_id: int, message_id: int, now_ms: int) -> Redeemed | Refused:
        """Check a pressed button's data; on success mark the nonce used (single use)."""
        parts = data.split(".")
        if len(parts) != 3 or len(data.encode()) > _MAX_DATA_BYTES:
            return Refused("malformed", "This button is not one of mine.")
        choice, nonce, tag = parts
        record = self._table.get(nonce)
        if record is None:
            return Refused("forged", "Unknown or forged button.")
        if not hmac.compare_digest(tag, self._tag(nonce, choice, record)):
            return Refused("forged", "Forged button data.")
        if record["chat_id"] != chat_id or record["message_id"] != message_id:
            return Refused("forged", "This button belongs to another message.")
        if record["used"]:
            return Refused("replayed", "This button was already used.")
        if now_ms > record["expires_ms"]:
            return Refused("expired", "Too late: this button has expired.")
        record["used"] = True
        record["used_ms"] = now_ms
        self._save()
        return Redeemed(record["subject"], choice, record["purpose"], message_id)

    def revoke(self, subject: str) -> None:
        """Mark every nonce of a subject used (a decided request's buttons stop working)."""
        changed = False
        for record in self._table.values():
            if record["subject"] == subject and not record["used"]:
                record["used"] = True
                changed = True
        if changed:
            self._save()

    def _prune(self, now_ms: int) -> None:
        # Keep expired/used records a day so a late replay still reads "replayed"/"expired".
        stale = [n for n, r in self._table.items() if now_ms - r["expires_ms"] > _KEEP_USED_MS]
        for n in stale:
            del self._table[n]
