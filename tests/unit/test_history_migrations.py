"""History schema migrations: from an empty (user_version 0) or older database, idempotent re-open."""

from __future__ import annotations

import sqlite3

import pytest

from medchat.core.errors import UserError
from medchat.app.history import HistoryStore, migrations
from medchat.app.history.migrations import MIGRATIONS, SCHEMA_VERSION, statements


def _version(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def _tables(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")}


def test_fresh_database_goes_from_version_0_to_latest(tmp_path):
    db = tmp_path / "h.db"
    sqlite3.connect(db).close()
    assert _version(db) == 0
    store = HistoryStore(db)
    assert _version(db) == SCHEMA_VERSION == len(MIGRATIONS)
    assert {"conversations", "messages", "messages_fts", "messages_fts_insert"} <= _tables(db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cid = store.new_conversation()
    store.add_message(cid, "user", "hello there")
    store.close()


def test_reopen_is_idempotent(tmp_path):
    db = tmp_path / "h.db"
    with HistoryStore(db) as store:
        cid = store.new_conversation()
        store.add_message(cid, "user", "persistent question about asthma")
    for _ in range(2):
        with HistoryStore(db) as store:
            assert _version(db) == SCHEMA_VERSION
            assert [m["content"] for m in store.messages(cid)] == ["persistent question about asthma"]
            assert len(store.search("asthma")) == 1, "re-running nothing must not duplicate the index"
            assert store.integrity_ok()


def test_old_version_database_is_upgraded_and_indexed(tmp_path):
    """A database left at version 1 (before search existed) gains an index covering its old messages."""
    db = tmp_path / "h.db"
    conn = sqlite3.connect(db)
    for statement in statements(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("INSERT INTO conversations(id, title, created, updated) VALUES (7, 'old', '2024-01-01', '2024-01-01')")
    conn.execute(
        "INSERT INTO messages(conversation_id, role, content, created) "
        "VALUES (7, 'user', 'an old note about gout flares', '2024-01-01')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    with HistoryStore(db) as store:
        assert _version(db) == SCHEMA_VERSION
        hits = store.search("gout")
        assert [(h["conversation_id"], h["conversation_title"]) for h in hits] == [(7, "old")]
        assert store.integrity_ok()


def test_failed_migration_rolls_back_completely(tmp_path, monkeypatch):
    db = tmp_path / "h.db"
    sqlite3.connect(db).close()
    broken = MIGRATIONS + ["CREATE TABLE extra(x INTEGER); INSERT INTO no_such_table VALUES (1);"]
    monkeypatch.setattr(migrations, "MIGRATIONS", broken)
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", len(broken))
    with pytest.raises(UserError):
        HistoryStore(db)
    assert _version(db) == 0
    assert _tables(db) == set(), "nothing from the failed run may remain"


def test_newer_or_corrupt_database_gives_a_user_error(tmp_path):
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(UserError, match="newer medchat"):
        HistoryStore(newer)

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(UserError, match="move the file aside"):
        HistoryStore(junk)


def test_statements_split_keeps_trigger_bodies_whole():
    parts = statements(MIGRATIONS[1])
    trigger = next(p for p in parts if p.startswith("CREATE TRIGGER messages_fts_update"))
    assert trigger.count("INSERT INTO") == 2 and trigger.rstrip(";").endswith("END")
    assert all(sqlite3.complete_statement(p) for p in parts)
