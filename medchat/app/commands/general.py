"""/help, /use and /profiles."""

from __future__ import annotations

from medchat.app.commands.registry import REGISTRY, Result, chain_text, command, describe_active, profile_names
from medchat.core.errors import UserError


@command("help", "/help [COMMAND]", "list commands and keys, or explain one command", instant=True,
         needs_session=False, complete=lambda s, done: [c.name for c in REGISTRY.commands()] if not done else [])
def _help(session, args):
    if args:
        cmd = REGISTRY.get(args.split()[0])
        if cmd is None:
            raise UserError(f"unknown command /{args.split()[0].lstrip('/')} — try /help")
        return Result("text", f"{cmd.usage}  —  {cmd.help}")
    lines = [f"{usage:<28} {text}" for usage, text in REGISTRY.help_rows()]
    lines.append("//TEXT                       send a message that starts with '/'")
    return Result("open_screen", "\n".join(lines), screen="help")


@command("use", "/use NAME", "switch to another profile (hot-swap; `/use base` for no adapter)",
         complete=lambda s, done: profile_names(s, done) if not done else [])
def _use(session, args):
    if not args:
        raise UserError("usage: /use NAME — see /profiles")
    profile = session.use(args.split()[0])
    return Result("text", f"now using {describe_active(profile)}")


@command("profiles", "/profiles", "list installed profiles (Ctrl+P picks one)", instant=True)
def _profiles(session, args):
    active = session.profile.name
    rows = [["*" if p.name == active else "", p.name, p.stage, p.base or "-", chain_text(p),
             ", ".join(d.get("name", "?") for d in p.datasets) or "-"] for p in session.engine.store.list()]
    return Result("table", "", columns=["", "name", "stage", "base", "chain", "datasets"], rows=rows,
                  screen="profiles")
