"""The journal: every step of the response, durably, and the state needed to resume.

Contents:
- tables: `journal_entries` (one row per step, optional unique idempotency key) and
  `journal_state` (named JSON snapshots: detector, ladder, paper account, replay cursor)
- SqlJournal: append / stage + flush / has / recent / find / get_state / put_state / checkpoint
- MemoryJournal: the same Journal (bot.interfaces) in memory, for tests and embedding
- to_payload: bot.events dataclasses -> JSON-safe dicts
- default_journal_url: where the journal lives when nothing says otherwise
- JournalBusy / the writer lock: one writing process per journal (`<file>.lock`, fcntl; on
  Postgres a session advisory lock of the database)

SQLAlchemy 2 Core; SQLite by default (a `postgresql://` URL works the same way). Calls are
synchronous. `append` commits at once; `stage` queues a row that the next `flush`, `append` or
`checkpoint` commits together with it, in one transaction (the hot path stages an action's
records and flushes them once, before its order goes out). Keys are indexed in memory, loaded
at open and kept in step with every write, so `has` costs no query: one writing process per
journal, enforced by an exclusive lock on `<file>.lock` taken before anything is written (on
Postgres: an advisory lock of the database, held on a connection kept for it); a second writer
gets JournalBusy naming the holder. Readers (`readonly=True`, `liqguard journal`) take no lock,
nor do the processes of an HA group (`single_writer=False`: its lease and fence decide).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Mapping, Sequence
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
    text,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    SQLAlchemyError,
)

from bot.logs import shown_url

DEFAULT_JOURNAL_PATH = Path("var") / "liqguard.sqlite"
URL_SCHEMES = ("sqlite", "postgresql")  # what the journal is tested on


class JournalError(Exception):
    """The journal cannot be opened or written; the message names it, the cause and the fix."""


def _cause(exc: BaseException) -> str:
    """The driver's own words (the first line), without SQLAlchemy's SQL and links."""
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def _writes(method: Any) -> Any:
    """A write that fails (disk full, file gone, locked) raises JournalError, not a traceback."""

    def guarded(self: SqlJournal, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except IntegrityError:
            raise
        except (SQLAlchemyError, sqlite3.Error) as exc:  # sqlite3: the kept connection (flush)
            raise JournalError(
                f"journal {shown_url(self.url)}: could not write ({_cause(exc)}); free space "
                "or fix the file, then run again: what was journaled before is kept"
            ) from None

    guarded.__doc__, guarded.__name__ = method.__doc__, method.__name__
    return guarded


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
    if p.is_dir():
        raise JournalError(f"journal {p} is a directory; give a file path, e.g. {p}/j.sqlite")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalError(
            f"journal {p}: its folder cannot be made ({exc.strerror or exc}); give a path "
            "in a writable folder"
        ) from None
    return f"sqlite:///{p}"


class JournalBusy(JournalError):
    """Another process writes this journal; the message names it (pid, command)."""


# One lock per journal file per process: a process may open its journal twice (a reader
# beside the writer); another process may not write at the same time.
_LOCKS: dict[str, tuple[int, int]] = {}  # real path of the lock file -> (fd, users)


def lock_path(url: str) -> Path | None:
    """The lock file beside a SQLite journal (None: not a file, e.g. Postgres or memory)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database + ".lock")


def _acquire(path: Path) -> str:
    key = os.path.realpath(path)
    if key in _LOCKS:
        fd, users = _LOCKS[key]
        _LOCKS[key] = (fd, users + 1)
        return key
    try:
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise JournalError(
            f"journal {key.removesuffix('.lock')}: cannot take its writer lock {key} "
            f"({exc.strerror or exc}); give a --journal path in a folder you can write"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise _busy(key.removesuffix(".lock"), holder) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} ({_command()})\n".encode())
    _LOCKS[key] = (fd, 1)
    return key


def _busy(journal: str, holder: str) -> JournalBusy:
    return JournalBusy(
        f"journal {journal} is in use by {holder}, and one process writes a journal at a time: "
        "wait for it to end, stop it, or pass another --journal (`liqguard journal` reads it "
        "meanwhile)."
    )


def _release(key: str) -> None:
    fd, users = _LOCKS.pop(key)
    if users > 1:
        _LOCKS[key] = (fd, users - 1)
        return
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)  # closing the descriptor drops the lock


# Postgres: a session advisory lock (liqguard's key pair), taken on a connection the writer
# keeps open; Postgres drops it with the session, a crash of the writer included.
_PG_LOCK_KEY = (0x6C716775, 0x6A726E6C)  # "lqgu", "jrnl": one liqguard journal per database
_PG_LOCKS: dict[str, tuple[Any, int]] = {}  # database (URL, password hidden) -> (conn, users)
_PG_NAME_BYTES = 63  # Postgres cuts application_name there


def _pg_acquire(engine: Engine, url: str) -> str:
    """Take this database's journal writer lock (once per process); JournalBusy if held."""
    key = make_url(url).render_as_string(hide_password=True)
    if key in _PG_LOCKS:
        conn, users = _PG_LOCKS[key]
        _PG_LOCKS[key] = (conn, users + 1)
        return key
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")  # no open txn
    try:
        me = f"pid {os.getpid()} ({_command()})".encode()[:_PG_NAME_BYTES]
        name = me.decode("utf-8", "ignore")
        conn.execute(text("SELECT set_config('application_name', :n, false)"), {"n": name})
        a, b = _PG_LOCK_KEY
        got = conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": a, "b": b})
        if not got.scalar():
            raise _busy(shown_url(url), _pg_holder(conn))
    except BaseException:
        conn.close()
        raise
    _PG_LOCKS[key] = (conn, 1)
    return key


def _pg_holder(conn: Any) -> str:
    """Who holds the lock: the pid and command it named itself by, else its backend pid."""
    row = conn.execute(
        text(
            "SELECT a.application_name, l.pid FROM pg_locks l "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
            "AND l.classid::bigint = :a AND l.objid::bigint = :b "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"a": _PG_LOCK_KEY[0], "b": _PG_LOCK_KEY[1]},
    ).first()
    if row is None:
        return "another process"
    name, backend = row
    return name if name and name.startswith("pid ") else f"another process (backend pid {backend})"


def _pg_release(key: str) -> None:
    conn, users = _PG_LOCKS.pop(key)
    if users > 1:
        _PG_LOCKS[key] = (conn, users - 1)
        return
    with contextlib.suppress(Exception):  # a dead connection: Postgres dropped the lock already
        conn.close()  # the session ends: Postgres drops its advisory lock


def _command() -> str:
    """This process's command line, short, with URL passwords and known secrets masked."""
    from bot.logs import redact  # lazy: the journal is imported by code that never logs

    words = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else ["python"]
    text = redact(" ".join(_mask_userinfo(w) for w in words))
    return text if len(text) <= 200 else text[:197] + "..."


def _mask_userinfo(word: str) -> str:
    """scheme://user:password@host -> scheme://user:***@host."""
    head, sep, rest = word.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return word
    auth, _, tail = rest.partition("@")
    user = auth.split(":", 1)[0]
    return f"{head}://{user}:***@{tail}" if ":" in auth else word


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    kind = type(value)  # exact types first: most values are plain (the hot path stages rows)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {str(k): _jsonable(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_jsonable(v) for v in value]
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

    def __init__(self, url: str, readonly: bool = False, single_writer: bool = True) -> None:
        """`single_writer=False`: take no writer lock (an HA group's processes share one
        Postgres journal; its lease and fence decide who writes)."""
        self.url = url
        self.readonly = readonly
        self._pg_lock: str | None = None
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        if scheme not in URL_SCHEMES:
            raise JournalError(
                f"journal.url {shown_url(url)!r}: unknown scheme {scheme!r}; use a SQLite "
                "path or sqlite:///PATH, or postgresql+psycopg://USER@HOST/DB"
            )
        where = None if readonly or not single_writer else lock_path(url)
        self._lock = _acquire(where) if where is not None else None  # before any write
        try:
            self._open(url, lock_db=single_writer and not readonly and scheme == "postgresql")
        except JournalError:
            if self._lock is not None:
                _release(self._lock)
                self._lock = None
            raise

    def _open(self, url: str, lock_db: bool = False) -> None:
        try:
            self.engine: Engine = create_engine(
                url, future=True, pool_pre_ping=not url.startswith("sqlite")
            )  # pre-ping: a restarted Postgres leaves dead pooled connections
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise JournalError(f"journal.url {shown_url(url)!r}: {_cause(exc)}") from None
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._staged: list[dict[str, Any]] = []
        # ha (bot.ha.lease): run in every write transaction; raising refuses the commit
        self.fence: Callable[[Any], None] | None = None
        self._commits = 0  # since the last WAL checkpoint (compact)
        self.commits = 0  # written by this journal since it was opened
        # SQLite: one driver connection kept for `flush` (the commit before every order):
        # SQLAlchemy's checkout, begin, reset and return cost ~4x the INSERTs themselves
        self._raw: Any = None
        try:
            if lock_db:  # before anything is written
                self._pg_lock = _pg_acquire(self.engine, url)
            metadata.create_all(self.engine)
            with self.engine.connect() as conn:
                rows = conn.execute(select(entries.c.key).where(entries.c.key.is_not(None)))
                self._keys: set[str] = {r[0] for r in rows}
                conn.execute(select(states.c.name, states.c.value).limit(1)).all()
        except JournalBusy:
            self.engine.dispose()
            raise
        except (DBAPIError, SQLAlchemyError) as exc:
            if self._pg_lock is not None:
                _pg_release(self._pg_lock)
                self._pg_lock = None
            self.engine.dispose()
            raise JournalError(
                f"journal {shown_url(url)}: cannot be opened as a liqguard journal "
                f"({_cause(exc)}); give another --journal path (or move this file away)"
            ) from None
        event.listen(self.engine, "commit", self._count_commit)

    # -- steps ----------------------------------------------------------------------------
    @_writes
    def append(self, kind: str, ts_ms: int, payload: dict[str, Any], key: str | None = None) -> int:
        """Record one step now (staged rows first); a repeated `key` returns the first id."""
        if key is not None and key in self._keys:
            return self._existing_id(key)
        row = _row(kind, ts_ms, payload, key)
        try:
            with self.engine.begin() as conn:
                self._write_staged(conn)
                result = conn.execute(insert(entries).values(**row))
                pk = result.inserted_primary_key
        except IntegrityError:  # a key written by another process: the first row stands
            self.flush()
            try:
                with self.engine.begin() as conn:
                    if self.fence is not None:
                        self.fence(conn)
                    pk = conn.execute(insert(entries).values(**row)).inserted_primary_key
            except IntegrityError:
                if key is None:
                    raise
                self._keys.add(key)
                return self._existing_id(key)
        self._staged.clear()
        if key is not None:
            self._keys.add(key)
        return int(pk[0]) if pk else 0

    def stage(self, kind: str, ts_ms: int, payload: dict[str, Any], key: str | None = None) -> None:
        """Queue one step for the next commit; `has(key)` is true at once (a repeat is ignored)."""
        if key is not None:
            if key in self._keys:
                return
            self._keys.add(key)
        self._staged.append(_row(kind, ts_ms, payload, key))

    @_writes
    def flush(self) -> None:
        """Commit the staged steps in ONE transaction (all or none after a crash)."""
        if not self._staged:
            return
        if self.fence is None and self.url.startswith("sqlite") and self._flush_raw():
            return
        try:
            with self.engine.begin() as conn:
                self._write_staged(conn)
        except IntegrityError:  # another process wrote one of the keys: keep its rows
            for row in self._staged:
                with contextlib.suppress(IntegrityError), self.engine.begin() as conn:
                    if self.fence is not None:
                        self.fence(conn)
                    conn.execute(insert(entries).values(**row))
        self._staged.clear()

    def _flush_raw(self) -> bool:
        """The staged rows in one transaction on the kept driver connection; False if a key
        was written meanwhile by another process (rolled back: the caller keeps its rows)."""
        if self._raw is None:
            self._raw = self.engine.raw_connection()  # the pragmas ran on it (connect event)
        raw = self._raw.driver_connection  # sqlite3's own: no proxy between us and it
        try:
            raw.executemany(_SQLITE_INSERT, [_sqlite_params(r) for r in self._staged])
            raw.commit()
        except sqlite3.IntegrityError:
            raw.rollback()
            return False
        except BaseException:
            with contextlib.suppress(Exception):
                raw.rollback()
            raise
        self._count_commit(None)
        self._staged.clear()
        return True

    def discard_staged(self) -> None:
        """Drop the rows not yet committed (a leader that lost its term must not write them)."""
        for row in self._staged:
            if row["key"] is not None:
                self._keys.discard(row["key"])
        self._staged.clear()

    def _write_staged(self, conn: Any) -> None:
        if self.fence is not None:
            self.fence(conn)
        if not self._staged:
            return
        if conn.dialect.name == "sqlite":  # the driver directly: a quarter of the Core cost
            conn.exec_driver_sql(_SQLITE_INSERT, [_sqlite_params(r) for r in self._staged])
        else:
            conn.execute(insert(entries), self._staged)

    def _existing_id(self, key: str) -> int:
        self.flush()
        existing = self.find_key(key)
        return int(existing["id"]) if existing is not None else 0

    def has(self, key: str) -> bool:
        return key in self._keys

    def find_key(self, key: str) -> dict[str, Any] | None:
        if key not in self._keys:
            return None
        self.flush()
        with self.engine.connect() as conn:
            row = conn.execute(select(entries).where(entries.c.key == key)).mappings().first()
        return dict(row) if row is not None else None

    def keys_with_prefix(self, prefix: str) -> set[str]:
        return {k for k in self._keys if k.startswith(prefix)}

    def find(
        self, kinds: Sequence[str] | None = None, since_id: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Entries in write order (oldest first), optionally of some kinds only."""
        query = select(entries).where(entries.c.id > since_id).order_by(entries.c.id)
        if kinds:
            query = query.where(entries.c.kind.in_([str(k) for k in kinds]))
        if limit is not None:
            query = query.limit(limit)
        self.flush()
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def recent(self, limit: int = 50, kinds: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The newest `limit` entries, oldest first."""
        query = select(entries).order_by(entries.c.id.desc()).limit(limit)
        if kinds:
            query = query.where(entries.c.kind.in_([str(k) for k in kinds]))
        self.flush()
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        return list(reversed(rows))

    def count_by_kind(self, since_id: int = 0) -> dict[str, int]:
        query = (
            select(entries.c.kind, func.count())
            .where(entries.c.id > since_id)
            .group_by(entries.c.kind)
        )
        self.flush()
        with self.engine.connect() as conn:
            return {k: int(n) for k, n in conn.execute(query)}

    def last_id(self) -> int:
        self.flush()
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(entries.c.id))).scalar()
        return int(value or 0)

    # -- state ----------------------------------------------------------------------------
    def get_state(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(states.c.value).where(states.c.name == name)).scalar()
        return dict(value) if isinstance(value, dict) else None

    @_writes
    def put_state(self, name: str, value: dict[str, Any]) -> None:
        self.checkpoint({name: value})

    @_writes
    def checkpoint(self, values: Mapping[str, dict[str, Any]]) -> None:
        """Write several named states, and the staged steps, in ONE transaction."""
        now_s = time.time()
        try:
            self._checkpoint(values, now_s, with_staged=True)
        except IntegrityError:
            self.flush()
            self._checkpoint(values, now_s, with_staged=False)
        self._staged.clear()

    def _checkpoint(
        self, values: Mapping[str, dict[str, Any]], now_s: float, with_staged: bool
    ) -> None:
        with self.engine.begin() as conn:
            if with_staged:
                self._write_staged(conn)
            for name, value in values.items():
                data = _jsonable(value)
                done = conn.execute(
                    update(states)
                    .where(states.c.name == name)
                    .values(value=data, updated_at_s=now_s)
                )
                if done.rowcount == 0:
                    conn.execute(insert(states).values(name=name, value=data, updated_at_s=now_s))

    def _count_commit(self, _conn: Any) -> None:
        self._commits += 1
        self.commits += 1

    @_writes
    def compact(self, every_commits: int = 200) -> bool:
        """Fold the SQLite WAL into the database file (PASSIVE: never waits on readers) once
        `every_commits` commits have piled up; call it when idle. True if it ran."""
        if not self.url.startswith("sqlite") or self._commits < every_commits:
            return False
        self.flush()
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        self._commits = 0
        return True

    def close(self) -> None:
        self.flush()
        if self._raw is not None:
            self._raw.close()  # back to the pool, which dispose() closes
            self._raw = None
        if self._pg_lock is not None:
            _pg_release(self._pg_lock)
            self._pg_lock = None
        self.engine.dispose()
        if self._lock is not None:  # the first close lets another process write
            _release(self._lock)
            self._lock = None


# Same text the JSON column type would write (json.dumps), so reads are unchanged.
_SQLITE_INSERT = (
    "INSERT INTO journal_entries (ts_ms, kind, key, payload, recorded_at_s) VALUES (?, ?, ?, ?, ?)"
)


def _sqlite_params(row: dict[str, Any]) -> tuple[Any, ...]:
    payload = json.dumps(row["payload"])
    return (row["ts_ms"], row["kind"], row["key"], payload, row["recorded_at_s"])


def _row(kind: str, ts_ms: int, payload: dict[str, Any], key: str | None) -> dict[str, Any]:
    return {
        "ts_ms": int(ts_ms),
        "kind": str(kind),  # a JournalKind stores its value: the same text old journals hold
        "key": key,
        "payload": _jsonable(payload),
        "recorded_at_s": time.time(),
    }


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (`liqguard journal`) never block the bot
    # NORMAL in WAL: a commit survives a crash of the process; a power cut may lose the last
    # commits (never corrupt the file); FULL would fsync every commit (README, Performance)
    cur.execute("PRAGMA synchronous=NORMAL")
    # no WAL checkpoint inside a commit (a few ms of copying and fsync on the hot path):
    # SqlJournal.compact() runs it when the bot is idle, and closing the file runs it too
    cur.execute("PRAGMA wal_autocheckpoint=0")
    cur.close()


class MemoryJournal:
    """The Journal of bot.interfaces in memory: nothing survives the process. Payloads and
    states go through JSON as in SqlJournal, so what is read back is what a restart reads."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.states: dict[str, str] = {}
        self._by_key: dict[str, dict[str, Any]] = {}
        self._staged: list[dict[str, Any]] = []

    def append(self, kind: str, ts_ms: int, payload: dict[str, Any], key: str | None = None) -> int:
        if key is not None and key in self._by_key:
            self.flush()
            return int(self._by_key[key]["id"])
        self.flush()
        return self._write(_row(kind, ts_ms, payload, key))

    def stage(self, kind: str, ts_ms: int, payload: dict[str, Any], key: str | None = None) -> None:
        if key is not None:
            if key in self._by_key:
                return
            self._by_key[key] = {}  # has(key) at once; the entry lands with the flush
        self._staged.append(_row(kind, ts_ms, payload, key))

    def flush(self) -> None:
        staged, self._staged = self._staged, []
        for row in staged:
            self._write(row)

    def _write(self, row: dict[str, Any]) -> int:
        entry = {"id": len(self.entries) + 1, **row, "payload": json.loads(dumps(row["payload"]))}
        self.entries.append(entry)
        if row["key"] is not None:
            self._by_key[row["key"]] = entry
        return int(entry["id"])

    def has(self, key: str) -> bool:
        return key in self._by_key

    def find_key(self, key: str) -> dict[str, Any] | None:
        self.flush()
        entry = self._by_key.get(key)
        return dict(entry) if entry else None

    def find(
        self, kinds: Sequence[str] | None = None, since_id: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        self.flush()
        wanted = {str(k) for k in kinds} if kinds else None
        out = [
            dict(e)
            for e in self.entries
            if e["id"] > since_id and (wanted is None or e["kind"] in wanted)
        ]
        return out[:limit] if limit is not None else out

    def get_state(self, name: str) -> dict[str, Any] | None:
        text = self.states.get(name)
        value = json.loads(text) if text is not None else None
        return value if isinstance(value, dict) else None

    def put_state(self, name: str, value: dict[str, Any]) -> None:
        self.checkpoint({name: value})

    def checkpoint(self, values: Mapping[str, dict[str, Any]]) -> None:
        self.flush()
        for name, value in values.items():
            self.states[name] = dumps(value)

    def compact(self, every_commits: int = 200) -> bool:
        return False  # nothing to fold in memory


def dumps(payload: Mapping[str, Any]) -> str:
    return json.dumps(_jsonable(payload), sort_keys=True)
