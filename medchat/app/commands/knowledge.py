"""/kb, /sources and /facts: the knowledge base in the chat."""

from __future__ import annotations

from medchat.app.commands.registry import Result, command, fixed
from medchat.core.errors import UserError


def _kb_names(session, done):
    if done:
        return []
    import kb as kbmod

    return ["on", "off", *[k["name"] for k in kbmod.list_kbs()]]


@command("kb", "/kb on|off|NAME", "turn the knowledge base on or off, or pick one", complete=_kb_names)
def _kb(session, args):
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
def _sources(session, args):
    return Result("action", sources_text(session.last_sources), action="toggle_sources")


@command("facts", "/facts on|off", "show or hide the verbatim KB sentences after each answer",
         complete=fixed("on", "off"), instant=True)
def _facts(session, args):
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
