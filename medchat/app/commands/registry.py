"""The registry: Result (what a command returns), Command, Registry (parse, run, complete, help), and
the helpers that every group of commands shares. Handlers live in the group modules beside this one."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

from medchat.core.errors import UserError

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

    def run(self, session, line: str) -> Result:
        try:
            cmd, args = self.parse(line)
            if cmd.needs_session and session is None:
                raise UserError(f"/{cmd.name} needs the model; it is still loading")
            return cmd.handler(session, args)
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


# --- shared by the groups ---------------------------------------------------------------------
def chain_text(profile) -> str:
    return " › ".join(profile.chain) if profile.chain else profile.name


def describe_active(profile) -> str:
    chain = chain_text(profile)
    return profile.name if chain == profile.name else f"{profile.name} ({chain})"


# --- completion providers -----------------------------------------------------------------
def profile_names(session, done):
    return session.engine.store.names() if session is not None and len(done) < 2 else []


def fixed(*options):
    return lambda session, done: list(options) if not done else []
