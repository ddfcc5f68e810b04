"""The leadership lease of one `ha.group`, and the fence that makes a stale leader harmless.

Every statement is one conditional write in PostgreSQL, judged by the database's clock:
- acquire: take the row only if it has expired (or does not exist): term + 1
- renew: push the expiry only if the row still holds our term and has not expired
- fence: inside the journal transaction that precedes an order, bump the row only if it
  holds our term with at least `margin_s` left; no row updated = the transaction is refused
  (Fenced), so nothing is committed and the order is never sent
A takeover's UPDATE and a fence's UPDATE lock the same row: they cannot interleave.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from bot.journal import JournalError

_ACQUIRE = text(
    """
    INSERT INTO ha_leases (grp, term, holder, expires_at, renewed_at, writes)
    VALUES (:g, 1, :h, clock_timestamp() + make_interval(secs => :lease), clock_timestamp(), 0)
    ON CONFLICT (grp) DO UPDATE SET term = ha_leases.term + 1, holder = EXCLUDED.holder,
        expires_at = EXCLUDED.expires_at, renewed_at = EXCLUDED.renewed_at, writes = 0
    WHERE ha_leases.expires_at < clock_timestamp()
    RETURNING term
    """
)
_RENEW = text(
    """
    UPDATE ha_leases SET expires_at = clock_timestamp() + make_interval(secs => :lease),
        renewed_at = clock_timestamp()
    WHERE grp = :g AND term = :t AND holder = :h AND expires_at > clock_timestamp()
    RETURNING term
    """
)
_FENCE = text(
    """
    UPDATE ha_leases SET writes = writes + 1
    WHERE grp = :g AND term = :t AND holder = :h
        AND expires_at > clock_timestamp() + make_interval(secs => :margin)
    """
)
_RELEASE = text(
    """
    UPDATE ha_leases SET expires_at = clock_timestamp() - interval '1 second'
    WHERE grp = :g AND term = :t AND holder = :h
    """
)
_READ = text("SELECT term, holder, expires_at > clock_timestamp() FROM ha_leases WHERE grp = :g")


class Fenced(JournalError):
    """A journal write of a term that no longer leads (or whose lease cannot be proven)."""


def holder_name() -> str:
    """host:pid:nonce — unique per process, so a restarted process is a new holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    """One process's view of its group's lease row (PostgreSQL only)."""

    def __init__(self, engine: Engine, group: str, lease_s: float, holder: str | None = None):
        if engine.dialect.name != "postgresql":
            raise ValueError("ha: the lease needs a PostgreSQL journal")
        self.engine = engine
        self.group = group
        self.lease_s = float(lease_s)
        self.margin_s = self.lease_s / 4  # an order leaves with at least this much lease left
        self.holder = holder or holder_name()
        self.term: int | None = None  # the term we hold, None when not leading

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"g": self.group, "h": self.holder, "t": self.term, **extra}

    def acquire(self) -> int | None:
        """The new term if the lease was free (expired or never taken), else None."""
        with self.engine.begin() as conn:
            row = conn.execute(_ACQUIRE, self._params(lease=self.lease_s)).first()
        self.term = int(row[0]) if row is not None else None
        return self.term

    def renew(self) -> bool:
        """Push the expiry; False: the term is lost (expired, or another holder took it)."""
        if self.term is None:
            return False
        with self.engine.begin() as conn:
            row = conn.execute(_RENEW, self._params(lease=self.lease_s)).first()
        if row is None:
            self.term = None
        return row is not None

    def release(self) -> None:
        """Give the lease up (clean shutdown): a standby takes it at its next look."""
        if self.term is None:
            return
        with self.engine.begin() as conn:
            conn.execute(_RELEASE, self._params())
        self.term = None

    def fence(self, conn: Connection) -> None:
        """Run inside a journal transaction: refuse it unless our term still leads."""
        term = self.term
        if term is None:
            raise Fenced(f"ha.group {self.group}: this process does not lead; nothing is sent")
        done = conn.execute(_FENCE, self._params(margin=self.margin_s))
        if done.rowcount != 1:
            raise Fenced(
                f"ha.group {self.group}: term {term} no longer leads (a newer term exists or "
                "the lease cannot be proven); this process steps down and sends nothing"
            )

    def current(self) -> tuple[int, str, bool] | None:
        """(term, holder, still valid?) of the group's row, as the database sees it now."""
        with self.engine.connect() as conn:
            row = conn.execute(_READ, {"g": self.group}).first()
        return (int(row[0]), str(row[1]), bool(row[2])) if row is not None else None
