"""The journal: idempotent steps, named states, one-transaction checkpoints, reopen after exit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from bot.events import Fill, JournalKind, OrderIntent, TradingState, TradingStateChanged
from bot.journal import JournalError, SqlJournal, default_journal_url, to_payload


def _journal(tmp_path: Path) -> SqlJournal:
    return SqlJournal(default_journal_url(tmp_path / "sub" / "j.sqlite"))


# The same tests on both back ends: a SQLite file and a real PostgreSQL (tests/pg.py).


def test_append_with_key_is_idempotent_and_survives_reopen(journal_url: str) -> None:
    j = SqlJournal(journal_url)
    first = j.append("fill", 10, {"client_id": "a-0"}, key="fill:a-0:0")
    again = j.append("fill", 11, {"client_id": "DIFFERENT"}, key="fill:a-0:0")
    j.append("note", 12, {"x": 1})
    j.append("note", 13, {"x": 2})
    assert again == first
    assert j.count_by_kind() == {"fill": 1, "note": 2}
    j.close()

    reopened = SqlJournal(journal_url)
    assert reopened.has("fill:a-0:0") and not reopened.has("fill:a-0:1")
    assert reopened.find_key("fill:a-0:0")["payload"] == {"client_id": "a-0"}
    assert [e["payload"]["x"] for e in reopened.recent(limit=2)] == [1, 2]
    assert [e["kind"] for e in reopened.recent(kinds=["fill"])] == ["fill"]
    assert reopened.keys_with_prefix("fill:") == {"fill:a-0:0"}


def test_states_and_checkpoint(journal_url: str) -> None:
    j = SqlJournal(journal_url)
    assert j.get_state("detector:s") is None
    j.put_state("detector:s", {"v": 1})
    j.checkpoint({"detector:s": {"v": 2}, "cursor:s": {"events": 5}})
    j.close()
    j = SqlJournal(journal_url)
    assert j.get_state("detector:s") == {"v": 2}
    assert j.get_state("cursor:s") == {"events": 5}


def test_to_payload_of_events() -> None:
    intent = OrderIntent("v", "BTCUSDT", "sell", "market", 1.5, True)
    fill = Fill("a-0", "v", "BTCUSDT", "sell", 1.5, 100.0, 0.1, 7)
    change = TradingStateChanged(1, TradingState.ACTIVE, TradingState.HALTED, "why")
    assert to_payload(intent)["reduce_only"] is True
    assert to_payload(fill, session="s")["session"] == "s"
    assert to_payload(change)["state"] == "HALTED"


def test_url_is_kept_and_path_becomes_sqlite(tmp_path: Path) -> None:
    assert default_journal_url("postgresql://u@h/db") == "postgresql://u@h/db"
    url = default_journal_url(tmp_path / "a" / "b.sqlite")
    assert url.startswith("sqlite:///") and (tmp_path / "a").is_dir()


def test_staged_rows_commit_together_and_the_key_index_answers_at_once(journal_url: str) -> None:
    j = SqlJournal(journal_url)
    reader = SqlJournal(journal_url)  # another connection: what a crash would leave
    j.stage("anomaly", 1, {"n": 1}, key="anomaly:s:1")
    j.stage("action_planned", 1, {"n": 2}, key="plan:a")
    j.stage("action_planned", 1, {"n": 99}, key="plan:a")  # a repeat is ignored
    assert j.has("plan:a") and not j.has("plan:b")  # from memory, before any commit
    assert reader.find() == []
    j.append("order_sent", 2, {"n": 3}, key="order:a-0")  # staged rows first, same commit
    assert [e["payload"]["n"] for e in reader.find()] == [1, 2, 3]
    j.stage("fill", 3, {"n": 4}, key="fill:a-0:0")
    j.checkpoint({"cursor:s": {"events": 9}})  # the checkpoint carries staged rows
    assert [e["kind"] for e in reader.find()][-1] == "fill"
    j.stage("note", 4, {"n": 5})
    j.close()  # closing flushes
    again = SqlJournal(journal_url)
    assert [e["payload"]["n"] for e in again.find()] == [1, 2, 3, 4, 5]
    assert again.keys_with_prefix("plan:") == {"plan:a"}  # the index is rebuilt on open
    first = again.find_key("order:a-0")
    assert first is not None and again.append("x", 5, {}, key="order:a-0") == first["id"]


def test_compact_folds_the_wal_only_when_due(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    for n in range(5):
        j.append("note", n, {"n": n})
    wal = tmp_path / "sub" / "j.sqlite-wal"
    assert not j.compact(every_commits=100)  # not due: the WAL stays as it is
    assert j.compact(every_commits=5)
    assert not j.compact(every_commits=1)  # nothing since
    j.append("note", 9, {"n": 9})
    assert wal.exists() and j.compact(every_commits=1)
    assert [e["payload"]["n"] for e in _journal(tmp_path).find()] == [0, 1, 2, 3, 4, 9]


def test_a_journal_kind_is_stored_as_its_text_and_old_rows_read_by_kind(journal_url: str) -> None:
    url = journal_url
    j = SqlJournal(url)
    j.append(JournalKind.ORDER_SENT, 1, {"client_id": "a-0"}, key="order:a-0")
    j.append("order_sent", 2, {"client_id": "b-0"})  # a row as an older version wrote it
    j.close()
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = [r[0] for r in conn.exec_driver_sql("SELECT kind FROM journal_entries")]
    engine.dispose()
    assert stored == ["order_sent", "order_sent"]
    again = SqlJournal(url)
    found = again.find(kinds=[JournalKind.ORDER_SENT])
    assert [e["payload"]["client_id"] for e in found] == ["a-0", "b-0"]
    assert all(e["kind"] == JournalKind.ORDER_SENT for e in found)
    again.close()


def test_flush_keeps_the_first_row_of_a_key_another_writer_took(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    j.stage("order_sent", 1, {"n": 1}, key="order:a-0")
    j.stage("note", 1, {"n": 2})
    other = sqlite3.connect(tmp_path / "sub" / "j.sqlite")  # a writer behind the lock's back
    other.execute(
        "INSERT INTO journal_entries (ts_ms, kind, key, payload, recorded_at_s) "
        "VALUES (0, 'order_sent', 'order:a-0', '{\"n\": 0}', 0)"
    )
    other.commit()
    j.flush()  # the batch is refused as a whole; each row then goes alone
    assert [(e["key"], e["payload"]["n"]) for e in j.find()] == [("order:a-0", 0), (None, 2)]
    other.execute("DROP TABLE journal_entries")  # the file is no journal any more
    other.commit()
    other.close()
    j.stage("note", 2, {"n": 3})
    with pytest.raises(JournalError, match=r"could not write \(no such table"):
        j.flush()
