"""Client order ids within each venue's limits, deterministic so a retry reuses the same id.

Binance `newClientOrderId` / `clientAlgoId`: `[.A-Za-z0-9:/_-]`, at most 36; Bybit
`orderLinkId`: `[A-Za-z0-9_-]`, at most 36; OKX `clOrdId`: letters and digits, at most 32;
Deribit `label`: at most 64. Other characters are dropped; an id still too long keeps its
head and ends with a hash of the whole original, so two long ids never collide by truncation.
"""

from __future__ import annotations

import hashlib
import re

_RULES: dict[str, tuple[re.Pattern[str], int]] = {
    "binance": (re.compile(r"[^.A-Za-z0-9:/_-]"), 36),
    "bybit": (re.compile(r"[^A-Za-z0-9_-]"), 36),
    "okx": (re.compile(r"[^A-Za-z0-9]"), 32),
    "deribit": (re.compile(r"[^A-Za-z0-9._:/-]"), 64),
}
_HASH_CHARS = 10


def venue_client_id(client_id: str, venue: str) -> str:
    """`client_id` made acceptable to `venue` (config name: binance, bybit, okx, deribit)."""
    disallowed, max_len = _RULES.get(venue, _RULES["okx"])  # unknown venue: the strictest
    clean = disallowed.sub("", client_id)
    if clean == client_id and 0 < len(clean) <= max_len:
        return clean
    digest = hashlib.sha256(client_id.encode()).hexdigest()[:_HASH_CHARS]
    if clean == client_id or len(clean) + _HASH_CHARS > max_len:
        head = clean[: max_len - _HASH_CHARS]
        return head + digest
    return clean + digest  # characters were dropped: the digest keeps ids apart
