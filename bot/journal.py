"""The journal: every step of the response, durably, and the state needed to resume.

Contents:
- tables: `journal_entries` (one row per step, optional unique idempotency key) and
  `journal_state` (named JSON snapshots: detector, ladder, paper account, replay cursor)
- SqlJournal: append / has / recent / find / get_state / put_state / checkpoint
- to_payload: bot.events dataclasses -> JSON-safe dicts
- default_journal_url: where the journal lives when nothing says otherwise

SQLAlchemy 2 Core; SQLite by default (a `postgresql://` URL works the same way). Calls are
synchronous: one short local transaction per step, so the journal is consistent at any moment.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

DEFAULT_JOURNAL_PATH = Path("var") / "liqguard.sqlite"

metadata = MetaData()

entries = Table(
    "journal_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts_ms", BigInteger, nullable=False, index=True),
    Column("kind", String(40), nullable=False, index=True),
    Column("key", String(200), unique=True, nullable=True),
    Column("payload", JSON, nullable=False),
    Column("recorded_at_s", Float, nullable=False),  # wall time the row was written
)

states = Table(
    "journal_state",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at_s", Float, nullable=False),
)


def default_journal_url(path: str | Path | None = None) -> str:
    """A SQLAlchemy URL: a URL is kept, a path becomes SQLite (parent folders created)."""
    if path is not None and "://" in str(path):
        return str(path)
    p = Path(path) if path is not None else DEFAULT_JOURNAL_PATH
    p.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{p}"


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if hasattr(value, "model_dump"):  # pydantic models (strategy params)
        return _jsonable(value.model_dump(mode="json"))
    return str(value)


def to_payload(obj: Any, **extra: Any) -> dict[str, Any]:
    """A JSON-safe dict of a bot.events dataclass (or mapping), plus extra fields."""
    base = _jsonable(obj)
    out: dict[str, Any] = dict(base) if isinstance(base, dict) else {"value": base}
    out.update(_jsonable(extra))
    return out


class SqlJournal:
    """The Journal of bot.interfaces on SQLAlchemy. Safe to reopen: a restart reads it back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, future=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    # -- steps ----------------------------------------------------------------------------
    def append(self, kind: str, ts_ms: int, payload: dict[str, Any], key: str | None = None) -> int:
        """Record one step; with `key`, a second append of the same key returns the first id."""
        row = {
            "ts_ms": int(ts_ms),
            "kind": kind,
            "key": key,
            "payload": _jsonable(payload),
            "recorded_at_s": time.time(),
        }
        try:
            with self.engine.begin() as conn:
                result = conn.execute(insert(entries).values(**row))
                pk = result.inserted_primary_key
                return int(pk[0]) if pk else 0
        except IntegrityError:
            existing = self.find_key(key) if key is not None else None
            if existing is None:
                raise
            return int(existing["id"])

    def has(self, key: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(select(entries.c.id).where(entries.c.key == key)).first()
        return found is not None

    def find_key(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(entries).where(entries.c.key == key)).mappings().first()
        return dict(row) if row is not None else None

    def keys_with_prefix(self, prefix: str) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(entries.c.key).where(entries.c.key.startswith(prefix)))
            return {r[0] for r in rows}

    def find(
        self, kinds: Sequence[str] | None = None, since_id: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Entries in write order (oldest first), optionally of some kinds only."""
        query = select(entries).where(entries.c.id > since_id).order_by(entries.c.id)
        if kinds:
            query = query.where(entries.c.kind.in_(list(kinds)))
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def recent(self, limit: int = 50, kinds: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The newest `limit` entries, oldest first."""
        query = select(entries).order_by(entries.c.id.desc()).limit(limit)
        if kinds:
            query = query.where(entries.c.kind.in_(list(kinds)))
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        return list(reversed(rows))

    def count_by_kind(self, since_id: int = 0) -> dict[str, int]:
        query = (
            select(entries.c.kind, func.count())
            .where(entries.c.id > since_id)
            .group_by(entries.c.kind)
        )
        with self.engine.connect() as conn:
            return {k: int(n) for k, n in conn.execute(query)}

    def last_id(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(entries.c.id))).scalar()
        return int(value or 0)

    # -- state ----------------------------------------------------------------------------
    def get_state(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(states.c.value).where(states.c.name == name)).scalar()
        return dict(value) if isinstance(value, dict) else None

    def put_state(self, name: str, value: dict[str, Any]) -> None:
        self.checkpoint({name: value})

    def checkpoint(self, values: Mapping[str, dict[str, Any]]) -> None:
        """Write several named states in ONE transaction (all or none after a crash)."""
        now_s = time.time()
        with self.engine.begin() as conn:
            for name, value in values.items():
                data = _jsonable(value)
                done = conn.execute(
                    update(states)
                    .where(states.c.name == name)
                    .values(value=data, updated_at_s=now_s)
                )
                if done.rowcount == 0:
                    conn.execute(insert(states).values(name=name, value=data, updated_at_s=now_s))

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (`liqguard journal`) never block the bot
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def dumps(payload: Mapping[str, Any]) -> str:
    return json.dumps(_jsonable(payload), sort_keys=True)
