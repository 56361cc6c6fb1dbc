"""The conversation and its history: /clear, /undo, /retry, /history, /load, /title, /export, /compare,
/quit and /forget."""

from __future__ import annotations

from pathlib import Path

from medchat.app.commands.registry import Result, command, fixed, profile_names
from medchat.core.errors import UserError


def _history_required(session):
    if session.history is None:
        raise UserError("history is off in this session")
    return session.history


def _conversation_required(session) -> int:
    _history_required(session)
    if session.conversation_id is None:
        raise UserError("this conversation is empty; send a message first")
    return session.conversation_id


@command("clear", "/clear", "start a new empty conversation (the old one stays in /history)")
def _clear(session, args):
    session.clear()
    return Result("action", "new conversation", action="clear")


@command("undo", "/undo", "drop the last exchange")
def _undo(session, args):
    n = session.undo()
    return Result("action", f"removed the last exchange ({n} message{'s' if n != 1 else ''})", action="reload")


@command("retry", "/retry [PROFILE]", "regenerate the last reply, optionally with another profile",
         complete=lambda s, done: profile_names(s, done) if not done else [])
def _retry(session, args):
    if not any(m["role"] == "user" for m in session.messages):
        raise UserError("nothing to retry: ask a question first")
    name = args.split()[0] if args else None
    if name:
        session.engine.store.get(name)  # unknown names fail now, with the clear line
    return Result("stream", f"retrying with {name or session.profile.name}",
                  events=lambda cancel: session.retry(name, cancel), data={"replace_last": True})


@command("history", "/history [QUERY]", "browse past conversations, or search them", instant=True)
def _history(session, args):
    store = _history_required(session)
    if args:
        hits = store.search(args, limit=20)
        rows = [[str(h.get("conversation_id", h.get("id", ""))), _cut(h.get("title", "")),
                 h.get("role", ""), _cut(h.get("snippet") or h.get("content", ""), 60)] for h in hits]
        columns = ["conversation", "title", "role", "match"]
        empty = f"nothing matches '{args}'"
    else:
        convs = store.conversations(limit=50)
        rows = [[str(c["id"]), _cut(c.get("title") or "(untitled)"), c.get("profile", ""),
                 str(c.get("updated") or c.get("created") or "")] for c in convs]
        columns = ["id", "title", "profile", "updated"]
        empty = "no conversations yet"
    return Result("table", "" if rows else empty, columns=columns, rows=rows, screen="history",
                  data={"query": args})


def _cut(text: str, n: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


@command("load", "/load ID", "open a past conversation from /history")
def _load(session, args):
    store = _history_required(session)
    try:
        cid = int(args.split()[0])
    except (IndexError, ValueError):
        raise UserError("usage: /load ID — find IDs with /history") from None
    if not store.messages(cid):
        raise UserError(f"no conversation {cid} with messages; see /history")
    session.load(cid)
    return Result("action", f"loaded conversation {cid}", action="reload")


@command("title", "/title TEXT", "name the current conversation")
def _title(session, args):
    if not args:
        raise UserError("usage: /title TEXT")
    session.history.set_title(_conversation_required(session), args)
    return Result("text", f"title set: {args}")


@command("export", "/export md|json PATH", "save the current conversation to a file", complete=fixed("md", "json"))
def _export(session, args):
    parts = args.split(maxsplit=1)
    if len(parts) != 2 or parts[0] not in ("md", "json"):
        raise UserError("usage: /export md|json PATH, e.g. /export md chat.md")
    cid = _conversation_required(session)
    out = session.history.export(cid, parts[0], Path(parts[1]).expanduser())
    return Result("text", f"exported to {out}")


@command("compare", "/compare A B", "answer the last question with two profiles side by side",
         complete=profile_names)
def _compare(session, args):
    names = args.split()
    if len(names) != 2:
        raise UserError("usage: /compare A B, e.g. /compare base covid-sft")
    if not any(m["role"] == "user" for m in session.messages):
        raise UserError("nothing to compare: ask a question first")
    for n in names:
        session.engine.store.get(n)
    return Result("compare", f"comparing {names[0]} and {names[1]}", data={"names": names},
                  compute=lambda cancel: session.compare(names[0], names[1], cancel))


@command("quit", "/quit", "leave medchat", aliases=("exit", "q"), instant=True, needs_session=False)
def _quit(session, args):
    return Result("action", "bye", action="quit")


@command("forget", "/forget", "delete the current conversation from /history for good and start a new one")
def _forget(session, args):
    cid = session.conversation_id
    if session.history is not None and cid is not None:
        session.history.delete_conversation(cid)  # secure_delete: the text is overwritten, not kept
    session.clear()
    text = f"conversation {cid} deleted from the history" if cid is not None else "nothing was saved; new conversation"
    return Result("action", text, action="clear")
