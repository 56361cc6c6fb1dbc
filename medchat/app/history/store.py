"""Conversation history: SQLite in WAL mode with FTS5 search over message content.

One connection shared by the UI thread and a generation worker (check_same_thread=False), with every
call serialised by a lock. Each write is one short transaction committed at once, so a crash or a
SIGKILL loses at most the write in flight. synchronous=NORMAL in WAL mode survives process crashes;
only a power cut can drop the last commits (the database stays consistent either way).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

from medchat.core import paths
from medchat.core.errors import UserError
from medchat.app.history.migrations import SCHEMA_VERSION, migrate, user_version

ROLES = ("system", "user", "assistant", "tool")
STATUSES = ("complete", "partial", "cancelled", "error")
JSON_META = ("profile_chain", "settings", "sources", "timings", "triage")
META = ("profile",) + JSON_META
EXPORT_FORMATS = ("md", "json")
TITLE_CHARS = 60
PREVIEW_CHARS = 80
_EDGE_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~，。！？；：、（）《》【】“”‘’…"
_QUERY_PARTS = re.compile(r'"([^"]*)"|(\S+)')
_SPLIT_PUNCT = re.compile(r"[，。！？；：、,;!?()\[\]{}<>]+")
_FTS_MIN = 3  # the trigram tokenizer cannot match shorter terms; those use LIKE instead


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def _one_line(text: str, limit: int) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def auto_title(content: str) -> str:
    first = next((ln for ln in (content or "").splitlines() if ln.strip()), "")
    return _one_line(first, TITLE_CHARS)


def query_terms(query: str) -> list[str]:
    """User text -> literal search terms. "double quotes" keep a phrase; punctuation at the edges goes."""
    terms = []
    for phrase, word in _QUERY_PARTS.findall(query or ""):
        for part in [phrase] if phrase else _SPLIT_PUNCT.split(word):
            term = " ".join(part.split()).strip(_EDGE_PUNCT + " ")
            if term and term not in terms:
                terms.append(term)
    return terms


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _snippet(content: str, terms: list[str], width: int = 90) -> str:
    lowered = content.lower()
    hits = [i for i in (lowered.find(t.lower()) for t in terms) if i >= 0]
    start = max(0, min(hits, default=0) - width // 3)
    text = " ".join(content[start : start + width].split())
    return ("…" if start else "") + text + ("…" if start + width < len(content) else "")


def _busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED") or any(
        word in str(exc) for word in ("locked", "busy"))


class HistoryStore:
    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else paths.history_db()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        paths.private_file(self.path)  # created 0600 before SQLite opens it; the -wal/-shm files inherit its mode
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA secure_delete=ON")  # deleted conversations are overwritten, not just unlinked
            if user_version(conn) > SCHEMA_VERSION:
                raise UserError(
                    f"the history database {self.path} was written by a newer medchat "
                    f"(schema {user_version(conn)} > {SCHEMA_VERSION}); upgrade medchat to read it"
                )
            migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if _busy(exc):
                raise UserError(f"the history database {self.path} is busy ({exc}); try again in a moment") from exc
            raise UserError(
                f"cannot open the history database {self.path} ({exc}); move the file aside to start a new "
                "history, or restore it from a backup"
            ) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        for side in (Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            if side.exists():  # SQLite gives them the database's mode; older ones may predate that
                paths.private_file(side)

    # ---- plumbing ---------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the history store is closed")
        return self._conn

    @contextmanager
    def _write(self):
        """One short write transaction, committed on success (IMMEDIATE: take the write lock first)."""
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db().execute(sql, params).fetchall()

    def _require_conversation(self, db: sqlite3.Connection, conversation_id: int) -> sqlite3.Row:
        # an id past SQLite's 64-bit INTEGER (e.g. `/load 10000000000000000000`) names no conversation either
        fits = -(2**63) <= conversation_id < 2**63
        row = db.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone() if fits else None
        if row is None:
            raise UserError(
                f"no conversation with id {conversation_id}; run `medchat history list` to see the saved ones"
            )
        return row

    @staticmethod
    def _meta_columns(meta: dict) -> dict:
        unknown = set(meta) - set(META)
        if unknown:
            raise TypeError(f"unknown message metadata: {', '.join(sorted(unknown))}; known: {', '.join(META)}")
        cols = {}
        for key, value in meta.items():
            if key == "profile":
                cols[key] = value or ""
            else:
                cols[key] = None if value is None else json.dumps(value, ensure_ascii=False, default=str)
        return cols

    @staticmethod
    def _check(role: str | None = None, status: str | None = None) -> None:
        if role is not None and role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")

    @staticmethod
    def _message_dict(row: sqlite3.Row) -> dict:
        out = dict(row)
        for key in JSON_META:
            out[key] = json.loads(out[key]) if out.get(key) else None
        return out

    # ---- conversations ----------------------------------------------------------------------
    def new_conversation(self, title: str = "", profile: str = "", system_prompt: str = "") -> int:
        stamp = now_iso()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO conversations(title, created, updated, profile, system_prompt) VALUES (?, ?, ?, ?, ?)",
                (_one_line(title, 200), stamp, stamp, profile or "", system_prompt or ""),
            )
            return int(cur.lastrowid)

    def set_title(self, conversation_id: int, title: str) -> None:
        with self._write() as db:
            self._require_conversation(db, conversation_id)
            db.execute(
                "UPDATE conversations SET title = ?, updated = ? WHERE id = ?",
                (_one_line(title, 200), now_iso(), conversation_id),
            )

    def conversation(self, conversation_id: int) -> dict:
        with self._lock:
            return dict(self._require_conversation(self._db(), conversation_id))

    def conversations(self, limit: int = 50) -> list[dict]:
        """Newest first, each with message_count and a preview of its first user message."""
        rows = self._read(
            """
            SELECT c.*,
                   (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count,
                   (SELECT content FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user'
                    ORDER BY m.id LIMIT 1) AS preview
            FROM conversations c ORDER BY c.updated DESC, c.id DESC LIMIT ?
            """,
            (max(0, int(limit)),),
        )
        return [dict(row) | {"preview": _one_line(row["preview"] or "", PREVIEW_CHARS)} for row in rows]

    def last_conversation(self) -> dict | None:
        found = self.conversations(limit=1)
        return found[0] if found else None

    def delete_conversation(self, conversation_id: int) -> None:
        """Remove a conversation and its messages for good (secure_delete, search index, WAL)."""
        with self._write() as db:
            self._require_conversation(db, conversation_id)
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))  # messages cascade
        self._scrub()

    def purge(self, before: str | None = None) -> int:
        """Remove every conversation last updated before the ISO date `before` (all when None); the count."""
        with self._write() as db:
            where, params = ("WHERE updated < ?", (before,)) if before else ("", ())
            n = db.execute(f"DELETE FROM conversations {where}", params).rowcount
        self._scrub()
        return max(0, n)

    def _scrub(self) -> None:
        """Leave no copy of deleted text: merge the search index, then empty the WAL into the database."""
        with self._lock:
            db = self._db()
            db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ---- messages ---------------------------------------------------------------------------
    def add_message(self, conversation_id: int, role: str, content: str, status: str = "complete", **meta) -> int:
        self._check(role, status)
        cols = self._meta_columns(meta)
        stamp = now_iso()
        with self._write() as db:
            conv = self._require_conversation(db, conversation_id)
            names = ["conversation_id", "role", "content", "created", "status", *cols]
            values = [conversation_id, role, content or "", stamp, status, *cols.values()]
            cur = db.execute(
                f"INSERT INTO messages({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", values
            )
            title = conv["title"] or (auto_title(content) if role == "user" else "")
            db.execute("UPDATE conversations SET updated = ?, title = ? WHERE id = ?", (stamp, title, conversation_id))
            return int(cur.lastrowid)

    def update_message(self, message_id: int, content: str | None = None, status: str | None = None, **meta) -> None:
        self._check(status=status)
        cols = self._meta_columns(meta)
        if content is not None:
            cols["content"] = content
        if status is not None:
            cols["status"] = status
        with self._write() as db:
            row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise UserError(f"no message with id {message_id} in the history; it may have been deleted")
            if cols:
                sets = ", ".join(f"{name} = ?" for name in cols)
                db.execute(f"UPDATE messages SET {sets} WHERE id = ?", (*cols.values(), message_id))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now_iso(), row["conversation_id"]))

    def delete_message(self, message_id: int) -> None:
        """Remove one message; deleting a message that is already gone is not an error."""
        with self._write() as db:
            row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is not None:
                db.execute("DELETE FROM messages WHERE id = ?", (message_id,))
                db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now_iso(), row["conversation_id"]))

    def move_to_end(self, message_id: int, conversation_id: int | None = None) -> int:
        """Move a message (a user message typed while the model was loading or busy, committed at once)
        to the end of `conversation_id` (default: its own) in one transaction; returns its new id.
        A conversation left empty by the move is removed."""
        with self._write() as db:
            row = db.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise UserError(f"no message with id {message_id} in the history; it may have been deleted")
            target = row["conversation_id"] if conversation_id is None else conversation_id
            self._require_conversation(db, target)
            last = db.execute("SELECT MAX(id) FROM messages WHERE conversation_id = ?", (target,)).fetchone()[0]
            if target == row["conversation_id"] and last == message_id:
                return message_id  # already last: nothing to do
            names = [k for k in row.keys() if k not in ("id", "conversation_id", "created")]
            cur = db.execute(
                f"INSERT INTO messages(conversation_id, created, {', '.join(names)}) "
                f"VALUES (?, ?, {', '.join('?' * len(names))})", (target, now_iso(), *(row[k] for k in names)))
            db.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            if not db.execute("SELECT 1 FROM messages WHERE conversation_id = ? LIMIT 1",
                              (row["conversation_id"],)).fetchone():
                db.execute("DELETE FROM conversations WHERE id = ?", (row["conversation_id"],))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now_iso(), target))
            return int(cur.lastrowid)

    def messages(self, conversation_id: int) -> list[dict]:
        with self._lock:
            db = self._db()
            self._require_conversation(db, conversation_id)
            rows = db.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,))
            return [self._message_dict(row) for row in rows.fetchall()]

    # ---- search -----------------------------------------------------------------------------
    def search(self, query: str, limit: int = 20) -> list[dict]:
        """Messages containing every term (case-insensitive substrings), best matches first.

        Each hit: message_id, conversation_id, conversation_title (also as title), role, content,
        created, status and a one-line snippet around the first term found.

        Terms are passed to FTS5 as quoted strings and to LIKE as escaped patterns, so no user text is
        ever parsed as query syntax; should SQLite still reject something, the answer is no results.
        """
        terms = query_terms(query)
        if not terms:
            return []
        long_terms = [t for t in terms if len(t) >= _FTS_MIN]
        short_terms = [t for t in terms if len(t) < _FTS_MIN]
        select = (
            "SELECT m.id AS message_id, m.conversation_id, c.title AS conversation_title, m.role, m.content, "
            "m.created, m.status FROM "
        )
        likes = "".join(" AND m.content LIKE ? ESCAPE '\\'" for _ in short_terms)
        params: list = [_like(t) for t in short_terms]
        if long_terms:
            match = " AND ".join('"' + t.replace('"', '""') + '"' for t in long_terms)
            sql = (
                select + "messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                "JOIN conversations c ON c.id = m.conversation_id "
                f"WHERE messages_fts MATCH ?{likes} ORDER BY messages_fts.rank, m.id DESC LIMIT ?"
            )
            params = [match, *params]
        else:
            sql = select + f"messages m JOIN conversations c ON c.id = m.conversation_id WHERE 1{likes} ORDER BY m.id DESC LIMIT ?"
        try:
            rows = self._read(sql, (*params, max(0, int(limit))))
        except sqlite3.OperationalError as exc:
            if _busy(exc):  # another medchat holds the database: say so, not "no results"
                raise UserError(f"the history database {self.path} is busy ({exc}); another medchat is writing "
                                "to it, try the search again in a moment") from exc
            return []
        # "title" repeats conversation_title so a hit can be labelled like a conversations() row
        return [dict(row) | {"title": row["conversation_title"], "snippet": _snippet(row["content"], terms)} for row in rows]

    # ---- export and maintenance -------------------------------------------------------------
    def export(self, conversation_id: int, fmt: str, path: Path, overwrite: bool = True) -> Path:
        """Write one conversation as Markdown or JSON (atomically); return the file written.
        `overwrite=False` refuses an existing file (the CLI's default; `--force` overwrites)."""
        from medchat.app.history.export import render

        fmt = (fmt or "").lower().lstrip(".")
        if fmt not in EXPORT_FORMATS:
            raise UserError(f"unknown export format '{fmt}'; use one of: {', '.join(EXPORT_FORMATS)}")
        with self._lock:
            conversation = self.conversation(conversation_id)
            messages = self.messages(conversation_id)
        target = Path(path).expanduser()
        if target.is_dir():
            target = target / f"medchat-conversation-{conversation_id}.{fmt}"
        if target.exists() and not overwrite:
            raise UserError(f"'{target}' already exists; choose another path or pass --force to overwrite it")
        try:
            paths.atomic_write_text(target, render(conversation, messages, fmt))
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise UserError(f"cannot write '{target}': {reason}; choose another path") from None
        return target

    def integrity_ok(self) -> bool:
        """SQLite's integrity_check says 'ok' and the search index matches the messages."""
        with self._lock:
            db = self._db()
            try:
                rows = db.execute("PRAGMA integrity_check").fetchall()
                if [tuple(r) for r in rows] != [("ok",)]:
                    return False
                db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
            except sqlite3.DatabaseError:
                return False
            return True

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "HistoryStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
