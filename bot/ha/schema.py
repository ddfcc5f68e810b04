"""Every table liqguard writes, created idempotently on SQLite and PostgreSQL.

The journal's tables (bot.journal) plus `ha_leases`: one row per `ha.group`, holding the
current leadership term, its holder and when it expires (the database's clock, so hosts'
clocks never matter). Running `ensure_schema` again changes nothing.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table
from sqlalchemy.engine import Engine

from bot.journal import metadata as journal_metadata

ha_metadata = MetaData()

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
    """Create what is missing (never drops or alters): safe at every start, on both back ends."""
    journal_metadata.create_all(engine, checkfirst=True)
    ha_metadata.create_all(engine, checkfirst=True)
