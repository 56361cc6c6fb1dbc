"""`medchat history`: list, show, search, export, delete and purge saved conversations."""

from __future__ import annotations

import argparse
import datetime as _dt
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from medchat.app.history.store import EXPORT_FORMATS, HistoryStore

_ROLE_STYLE = {"user": ("You", "bold cyan"), "assistant": ("medchat", "bold green"), "system": ("System", "bold magenta")}


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{raw}'")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _date(raw: str) -> str:
    """A local calendar day -> the UTC instant it starts, comparable with the stored timestamps."""
    try:
        day = _dt.date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-01-31, got '{raw}'")
    start = _dt.datetime.combine(day, _dt.time()).astimezone()
    return start.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "history",
        help="browse, search and export saved conversations",
        description="Browse, search and export saved conversations (stored in MEDCHAT_HOME/history.db).",
    )
    parser.set_defaults(func=cmd_list, limit=20, json=False)  # bare `medchat history` lists
    sub = parser.add_subparsers(dest="history_command", metavar="{list,show,search,export,delete,purge}")

    p = sub.add_parser("list", help="recent conversations, newest first")
    p.add_argument("--limit", type=_positive_int, default=20, help="how many to show (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="print one conversation")
    p.add_argument("id", type=int, help="conversation id (see `medchat history list`)")
    p.add_argument("--json", action="store_true", help="print JSON instead of formatted text")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("search", help="full-text search over all messages")
    p.add_argument("query", nargs="+", help='words to find; "quote a phrase" to keep it together')
    p.add_argument("--limit", type=_positive_int, default=20, help="how many results (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("export", help="write one conversation to a Markdown or JSON file")
    p.add_argument("id", type=int, help="conversation id (see `medchat history list`)")
    p.add_argument("format", choices=EXPORT_FORMATS, help="md or json")
    p.add_argument("path", help="file to write (or a directory to write into)")
    p.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("delete", help="delete one conversation for good")
    p.add_argument("id", type=int, help="conversation id (see `medchat history list`)")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("purge", help="delete every conversation, or those last used before a date")
    p.add_argument("--before", type=_date, metavar="YYYY-MM-DD", help="only conversations last updated before this day")
    p.set_defaults(func=cmd_purge)


def _local(stamp: str) -> str:
    try:
        return _dt.datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return stamp or ""


def _print_json(data) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def cmd_list(args) -> int:
    with HistoryStore() as store:
        rows = store.conversations(limit=args.limit)
    if args.json:
        _print_json(rows)
        return 0
    console = Console()
    if not rows:
        console.print("No saved conversations yet.")
        return 0
    table = Table(title="Conversations", show_lines=False)
    for name, kw in (("ID", {"justify": "right"}), ("Updated", {}), ("Title", {"overflow": "fold"}),
                     ("Msgs", {"justify": "right"}), ("First question", {"overflow": "ellipsis"})):
        table.add_column(name, **kw)
    for row in rows:
        table.add_row(str(row["id"]), _local(row["updated"]), Text(row["title"] or "(untitled)"),
                      str(row["message_count"]), Text(row["preview"]))
    console.print(table)
    return 0


def cmd_show(args) -> int:
    with HistoryStore() as store:
        conversation = store.conversation(args.id)
        messages = store.messages(args.id)
    if args.json:
        _print_json({"conversation": conversation, "messages": messages})
        return 0
    console = Console()
    console.rule(Text(conversation["title"] or f"Conversation {args.id}", style="bold"))
    details = f"#{args.id} · started {_local(conversation['created'])}"
    if conversation["profile"]:
        details += f" · profile {conversation['profile']}"
    console.print(Text(details, style="dim"))
    for msg in messages:
        name, style = _ROLE_STYLE.get(msg["role"], (msg["role"], "bold"))
        header = Text(f"\n{name}", style=style)
        header.append(f"  {_local(msg['created'])}", style="dim")
        if msg["status"] != "complete":
            label = "interrupted" if msg["status"] == "partial" else msg["status"]
            header.append(f"  [{label}]", style="yellow")
        console.print(header)
        if msg.get("triage") and msg["triage"].get("guidance"):
            console.print(Text(msg["triage"]["guidance"], style="bold red"))
        console.print(Text(msg["content"] or "(empty)"))
    return 0


def cmd_search(args) -> int:
    query = " ".join(args.query)
    with HistoryStore() as store:
        hits = store.search(query, limit=args.limit)
    if args.json:
        _print_json(hits)
        return 0
    console = Console()
    if not hits:
        console.print(Text(f"No messages match {query!r}."))
        return 0
    table = Table(title=f"Messages matching {query!r}")
    table.add_column("Conv", justify="right")
    table.add_column("When")
    table.add_column("Who")
    table.add_column("Text", overflow="fold")
    for hit in hits:
        who = _ROLE_STYLE.get(hit["role"], (hit["role"], ""))[0]
        table.add_row(str(hit["conversation_id"]), _local(hit["created"]), who, Text(hit["snippet"]))
    console.print(table)
    console.print(Text("Open one with `medchat history show ID`.", style="dim"))
    return 0


def cmd_export(args) -> int:
    with HistoryStore() as store:
        written = store.export(args.id, args.format, args.path, overwrite=args.force)
    Console().print(Text(f"Wrote {written}"))
    return 0


def cmd_delete(args) -> int:
    with HistoryStore() as store:
        store.delete_conversation(args.id)
    Console().print(Text(f"Deleted conversation {args.id}."))
    return 0


def cmd_purge(args) -> int:
    with HistoryStore() as store:
        n = store.purge(before=args.before)
    Console().print(Text(f"Deleted {n} conversation{'s' if n != 1 else ''}."))
    return 0
