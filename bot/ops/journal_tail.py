"""The journal as it is committed: new rows by id, and how long each commit took.

Reads through its own connection (committed rows only): it never flushes the journal's staged
rows, so watching does not change when the pipeline commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, select

from bot.journal import SqlJournal, entries

Row = dict[str, Any]


class JournalTail:
    def __init__(self, journal: SqlJournal, from_start: bool = False) -> None:
        self.journal = journal
        self.listeners: list[Callable[[Row], None]] = []
        self.commit_listeners: list[Callable[[float], None]] = []
        self.last_commit_s: float | None = None
        with journal.engine.connect() as conn:
            top = conn.execute(select(entries.c.id).order_by(entries.c.id.desc()).limit(1))
            self.last_id = 0 if from_start else int(top.scalar() or 0)
        event.listen(journal.engine, "begin", self._begin)
        event.listen(journal.engine, "commit", self._commit)

    def close(self) -> None:
        event.remove(self.journal.engine, "begin", self._begin)
        event.remove(self.journal.engine, "commit", self._commit)

    def _begin(self, conn: Any) -> None:
        conn.info["liqguard_begin"] = time.perf_counter()

    def _commit(self, conn: Any) -> None:
        began = conn.info.pop("liqguard_begin", None)
        self.last_commit_s = time.time()
        if began is not None:
            took = time.perf_counter() - began
            for listen in self.commit_listeners:
                listen(took)

    def poll(self, limit: int = 50_000) -> int:
        """Hand every row committed since the last poll to the listeners; how many."""
        query = select(entries).where(entries.c.id > self.last_id).order_by(entries.c.id)
        with self.journal.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query.limit(limit)).mappings()]
        for row in rows:
            for listen in self.listeners:
                listen(row)
        if rows:
            self.last_id = int(rows[-1]["id"])
        return len(rows)
