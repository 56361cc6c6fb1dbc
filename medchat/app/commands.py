"""The slash-command registry shared by the TUI and the REPL.

A command is a name, a usage line, a help line, an optional completion provider and a handler
`(session, args, ui) -> Result`. Handlers change the session and describe what to show; the front
ends only render Results (text, markdown, table, an action, a reply stream, a comparison, a screen).
User mistakes come back as a one-line `error` Result, never an exception.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from medchat.core.errors import UserError
from medchat.core.settings import GenerationSettings

SETTINGS = [f for f in GenerationSettings.__dataclass_fields__ if not f.startswith("_")]
# whole-line words that act as commands (ChatGLM-demo style); only exact matches, so a real
# message that merely contains these words is never hijacked
PLAIN_WORDS = {"exit": "/quit", "quit": "/quit", "clear": "/clear"}


@dataclass
class Result:
    kind: str = "text"  # text | markdown | table | error | action | stream | compare | open_screen | none
    text: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    action: str = ""  # quit | clear | reload | toggle_sources
    screen: str = ""  # help | profiles | history
    data: dict = field(default_factory=dict)
    events: Callable[[threading.Event], Iterator] | None = None  # "stream": TurnEvents of a reply
    compute: Callable[[threading.Event], dict] | None = None  # "compare": {profile: reply}

    def plain(self) -> str:
        """The result as plain text (the REPL's view, and the fallback of screens)."""
        if self.kind == "table":
            return format_table(self.columns, self.rows) + (f"\n{self.text}" if self.text else "")
        return self.text


@dataclass
class Command:
    name: str
    usage: str
    help: str
    handler: Callable
    complete: Callable | None = None  # (session, arg_prefix) -> list[str] of whole-argument candidates
    aliases: tuple[str, ...] = ()
    instant: bool = False  # quick and safe while a reply streams: the front end runs it at once
    needs_session: bool = True  # False: works while the model is still loading


class Registry:
    def __init__(self):
        self._commands: dict[str, Command] = {}
        self._aliases: dict[str, str] = {}

    def command(self, name: str, usage: str, help: str, complete=None, aliases=(), instant=False,
                needs_session=True):
        def deco(fn):
            self._commands[name] = Command(name, usage, help, fn, complete, tuple(aliases), instant, needs_session)
            for a in aliases:
                self._aliases[a] = name
            return fn
        return deco

    def commands(self) -> list[Command]:
        return list(self._commands.values())

    def get(self, name: str) -> Command | None:
        name = name.lstrip("/").lower()
        return self._commands.get(self._aliases.get(name, name))

    def parse(self, line: str) -> tuple[Command, str]:
        """'/set temperature 0.4' -> (the set command, 'temperature 0.4'); args keep inner newlines."""
        name, args = re.match(r"(\S*)\s*(.*)", line.strip()[1:], re.S).groups()
        cmd = self.get(name) if name else None
        if cmd is None:
            raise UserError(f"unknown command /{name} — try /help")
        return cmd, args.strip()

    def run(self, session, line: str, ui=None) -> Result:
        try:
            cmd, args = self.parse(line)
            if cmd.needs_session and session is None:
                raise UserError(f"/{cmd.name} needs the model; it is still loading")
            return cmd.handler(session, args, ui)
        except UserError as exc:
            return Result("error", str(exc))

    def complete(self, session, text: str) -> list[str]:
        """Whole-line completions for `text` (e.g. '/us' -> ['/use '], '/use co' -> ['/use covid-sft'])."""
        if not text.startswith("/") or "\n" in text:
            return []
        if " " not in text:
            word = text[1:].lower()
            return sorted(f"/{c.name} " for c in self.commands() if c.name.startswith(word))
        head, _, arg = text.partition(" ")
        cmd = self.get(head)
        if cmd is None or cmd.complete is None:
            return []
        done, _, last = arg.rpartition(" ")
        try:
            options = cmd.complete(session, done.split())
        except Exception:  # completion must never break typing (e.g. the KB is not built yet)
            return []
        prefix = f"{head} {done + ' ' if done else ''}"
        return [prefix + o for o in options if o.startswith(last)]

    def help_rows(self) -> list[tuple[str, str]]:
        return [(c.usage, c.help) for c in self.commands()]


REGISTRY = Registry()
command = REGISTRY.command


def classify(line: str) -> tuple[str, str]:
    """('command', line) or ('message', text). '//text' sends '/text' as a message."""
    stripped = line.strip()
    if stripped.startswith("//"):
        return "message", stripped[1:]
    if stripped.startswith("/"):
        return "command", stripped
    if stripped.lower() in PLAIN_WORDS:
        return "command", PLAIN_WORDS[stripped.lower()]
    return "message", stripped


def format_table(columns: list[str], rows: list[list[str]]) -> str:
    cells = [list(map(str, columns))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def chain_text(profile) -> str:
    return " › ".join(profile.chain) if profile.chain else profile.name


def describe_active(profile) -> str:
    chain = chain_text(profile)
    return profile.name if chain == profile.name else f"{profile.name} ({chain})"


# --- completion providers -----------------------------------------------------------------
def _profile_names(session, done):
    return session.engine.store.names() if session is not None and len(done) < 2 else []


def _kb_names(session, done):
    if done:
        return []
    import kb as kbmod

    return ["on", "off", *[k["name"] for k in kbmod.list_kbs()]]


def _fixed(*options):
    return lambda session, done: list(options) if not done else []


def _history_required(session):
    if session.history is None:
        raise UserError("history is off in this session")
    return session.history


def _conversation_required(session) -> int:
    _history_required(session)
    if session.conversation_id is None:
        raise UserError("this conversation is empty; send a message first")
    return session.conversation_id


# --- commands -------------------------------------------------------------------------------
@command("help", "/help [COMMAND]", "list commands and keys, or explain one command", instant=True,
         needs_session=False, complete=lambda s, done: [c.name for c in REGISTRY.commands()] if not done else [])
def _help(session, args, ui):
    if args:
        cmd = REGISTRY.get(args.split()[0])
        if cmd is None:
            raise UserError(f"unknown command /{args.split()[0].lstrip('/')} — try /help")
        return Result("text", f"{cmd.usage}  —  {cmd.help}")
    lines = [f"{usage:<28} {text}" for usage, text in REGISTRY.help_rows()]
    lines.append("//TEXT                       send a message that starts with '/'")
    return Result("open_screen", "\n".join(lines), screen="help")


@command("use", "/use NAME", "switch to another profile (hot-swap; `/use base` for no adapter)",
         complete=lambda s, done: _profile_names(s, done) if not done else [])
def _use(session, args, ui):
    if not args:
        raise UserError("usage: /use NAME — see /profiles")
    profile = session.use(args.split()[0])
    return Result("text", f"now using {describe_active(profile)}")


@command("profiles", "/profiles", "list installed profiles (Ctrl+P picks one)", instant=True)
def _profiles(session, args, ui):
    active = session.profile.name
    rows = [["*" if p.name == active else "", p.name, p.stage, p.base or "-", chain_text(p),
             ", ".join(d.get("name", "?") for d in p.datasets) or "-"] for p in session.engine.store.list()]
    return Result("table", "", columns=["", "name", "stage", "base", "chain", "datasets"], rows=rows,
                  screen="profiles")


@command("kb", "/kb on|off|NAME", "turn the knowledge base on or off, or pick one", complete=_kb_names)
def _kb(session, args, ui):
    word = args.split()[0] if args else ""
    if not word:
        state = session.kb_name or "off"
        return Result("text", f"knowledge base: {state}")
    if word == "off":
        session.set_kb(None)
    elif word == "on":
        bound = session.profile.kb
        session.set_kb(bound if bound not in ("", "none") else "default")
    else:
        session.set_kb(word)
    return Result("text", f"knowledge base: {session.kb_name or 'off'}")


@command("sources", "/sources", "show the KB passages cited by the last answer (Ctrl+S)", instant=True)
def _sources(session, args, ui):
    return Result("action", sources_text(session.last_sources), action="toggle_sources")


@command("facts", "/facts on|off", "show or hide the verbatim KB sentences after each answer",
         complete=_fixed("on", "off"), instant=True)
def _facts(session, args, ui):
    word = args.split()[0].lower() if args else ""
    if word not in ("", "on", "off"):
        raise UserError("usage: /facts on|off")
    if word:
        session.key_facts = word == "on"
    return Result("text", f"key facts: {'on' if session.key_facts else 'off'}")


def relevance(passage) -> str:
    """KB passages carry a cosine `similarity` (comparable across questions); others only a score."""
    if getattr(passage, "similarity", None):
        return f"similarity {float(passage.similarity):.2f}"
    return f"score {float(getattr(passage, 'score', 0)):.2f}"


def sources_text(passages) -> str:
    if not passages:
        return "no sources for the last answer"
    out = []
    for i, p in enumerate(passages, 1):
        section = f" — {p.section}" if getattr(p, "section", "") else ""
        out.append(f"[{i}] {p.title}{section} ({p.source}, {relevance(p)})")
    return "\n".join(out)


@command("set", "/set NAME VALUE", f"change a generation setting ({', '.join(SETTINGS)})",
         complete=lambda s, done: SETTINGS if not done else [])
def _set(session, args, ui):
    parts = args.split()
    if len(parts) != 2:
        raise UserError(f"usage: /set NAME VALUE, e.g. /set temperature 0.4 (names: {', '.join(SETTINGS)})")
    new = session.set(parts[0], parts[1])
    return Result("text", f"{parts[0]} = {getattr(new, parts[0])}")


@command("show", "/show settings|profile|system", "show the current settings, profile or system prompt",
         instant=True, complete=_fixed("settings", "profile", "system"))
def _show(session, args, ui):
    what = args.split()[0] if args else "settings"
    if what == "settings":
        rows = [[k, str(v)] for k, v in session.settings.to_dict().items()]
        return Result("table", "", columns=["setting", "value"], rows=rows)
    if what == "system":
        return Result("text", session.system_prompt)
    if what == "profile":
        p = session.profile
        rows = [["name", p.name], ["chain", chain_text(p)], ["stage", p.stage or "-"],
                ["base", p.base or getattr(session.engine, "base_name", "-")],
                ["datasets", ", ".join(f"{d.get('name')} ({d.get('rows', '?')} rows)" for d in p.datasets) or "-"],
                ["metrics", ", ".join(f"{k}={v}" for k, v in p.metrics.items()) or "-"],
                ["description", p.description or "-"]]
        return Result("table", "", columns=["field", "value"], rows=rows)
    raise UserError(f"unknown /show target '{what}'; use settings, profile or system")


@command("system", "/system TEXT|reset", "replace the system prompt (multi-line allowed); `reset` restores it")
def _system(session, args, ui):
    if not args:
        return Result("text", session.system_prompt)
    session.set_system("" if args == "reset" else args)
    return Result("text", "system prompt reset to the preset" if args == "reset" else "system prompt set")


@command("clear", "/clear", "start a new empty conversation (the old one stays in /history)")
def _clear(session, args, ui):
    session.clear()
    return Result("action", "new conversation", action="clear")


@command("undo", "/undo", "drop the last exchange")
def _undo(session, args, ui):
    n = session.undo()
    return Result("action", f"removed the last exchange ({n} message{'s' if n != 1 else ''})", action="reload")


@command("retry", "/retry [PROFILE]", "regenerate the last reply, optionally with another profile",
         complete=lambda s, done: _profile_names(s, done) if not done else [])
def _retry(session, args, ui):
    if not any(m["role"] == "user" for m in session.messages):
        raise UserError("nothing to retry: ask a question first")
    name = args.split()[0] if args else None
    if name:
        session.engine.store.get(name)  # unknown names fail now, with the clear line
    return Result("stream", f"retrying with {name or session.profile.name}",
                  events=lambda cancel: session.retry(name, cancel), data={"replace_last": True})


@command("history", "/history [QUERY]", "browse past conversations, or search them", instant=True)
def _history(session, args, ui):
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
def _load(session, args, ui):
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
def _title(session, args, ui):
    if not args:
        raise UserError("usage: /title TEXT")
    session.history.set_title(_conversation_required(session), args)
    return Result("text", f"title set: {args}")


@command("export", "/export md|json PATH", "save the current conversation to a file", complete=_fixed("md", "json"))
def _export(session, args, ui):
    parts = args.split(maxsplit=1)
    if len(parts) != 2 or parts[0] not in ("md", "json"):
        raise UserError("usage: /export md|json PATH, e.g. /export md chat.md")
    cid = _conversation_required(session)
    out = session.history.export(cid, parts[0], Path(parts[1]).expanduser())
    return Result("text", f"exported to {out}")


@command("compare", "/compare A B", "answer the last question with two profiles side by side",
         complete=_profile_names)
def _compare(session, args, ui):
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
def _quit(session, args, ui):
    return Result("action", "bye", action="quit")


from medchat.app import forget_cmd  # noqa: E402,F401 - registers /forget
