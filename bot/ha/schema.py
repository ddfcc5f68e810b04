"""Every table liqguard writes, created idempotently on SQLite and PostgreSQL.

The journal's tables (bot.journal) plus `ha_leases`: one row per `ha.group`, holding the
current leadership term, its holder and when it expires (the database's clock, so hosts'
clocks never matter). Running `ensure_schema` again changes nothing.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table, text
from sqlalchemy.engine import Engine

from bot.journal import metadata as journal_metadata

ha_metadata = MetaData()
SCHEMA_LOCK = 0x6C6971_6775617264  # "liqguard": the advisory lock key of schema creation

leases = Table(
    "ha_leases",
    ha_metadata,
    Column("grp", String(100), primary_key=True),
    Column("term", BigInteger, nullable=False),  # grows by one at every takeover
    Column("holder", String(200), nullable=False),  # host:pid:nonce of the leader
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("renewed_at", DateTime(timezone=True), nullable=False),
    Column("writes", BigInteger, nullable=False, default=0),  # fenced commits of this term
)


def ensure_schema(engine: Engine) -> None:
    """Create what is missing (never drops or alters): safe at every start, on both back ends,
    and from processes starting at once (PostgreSQL: one at a time, under a lock)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # two hosts starting together on an empty database would both CREATE TABLE
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK})
        journal_metadata.create_all(conn, checkfirst=True)
        ha_metadata.create_all(conn, checkfirst=True)
