"""Conversation history: a SQLite (WAL) store with numbered migrations and FTS5 search."""

from medchat.app.history.store import HistoryStore

__all__ = ["HistoryStore"]
