"""The slash-command registry shared by the TUI and the REPL.

registry.py holds Result, Command and the Registry; the handlers live in groups (general, knowledge,
settings, conversation), imported here in that order, which is the order of /help. A command is a name,
a usage line, a help line, an optional completion provider and a handler `(session, args) -> Result`.
Handlers change the session and describe what to show; the front ends only render Results (text,
markdown, table, an action, a reply stream, a comparison, a screen). User mistakes come back as a
one-line `error` Result, never an exception.
"""

from __future__ import annotations

from medchat.app.commands.registry import (PLAIN_WORDS, REGISTRY, Command, Registry, Result, chain_text, classify,
                                           command, describe_active, format_table)
from medchat.app.commands import general, knowledge, settings, conversation  # noqa: E402,F401 - registers
from medchat.app.commands.knowledge import relevance, sources_text
from medchat.app.commands.settings import SETTINGS

__all__ = ["PLAIN_WORDS", "REGISTRY", "SETTINGS", "Command", "Registry", "Result", "chain_text", "classify", "command",
           "describe_active", "format_table", "relevance", "sources_text"]
