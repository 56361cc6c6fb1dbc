"""/set, /show and /system: generation settings and the system prompt."""

from __future__ import annotations

from medchat.app.commands.registry import Result, chain_text, command, fixed
from medchat.core.errors import UserError
from medchat.core.settings import GenerationSettings

SETTINGS = [f for f in GenerationSettings.__dataclass_fields__ if not f.startswith("_")]


@command("set", "/set NAME VALUE", f"change a generation setting ({', '.join(SETTINGS)})",
         complete=lambda s, done: SETTINGS if not done else [])
def _set(session, args):
    parts = args.split()
    if len(parts) != 2:
        raise UserError(f"usage: /set NAME VALUE, e.g. /set temperature 0.4 (names: {', '.join(SETTINGS)})")
    new = session.set(parts[0], parts[1])
    return Result("text", f"{parts[0]} = {getattr(new, parts[0])}")


@command("show", "/show settings|profile|system", "show the current settings, profile or system prompt",
         instant=True, complete=fixed("settings", "profile", "system"))
def _show(session, args):
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
def _system(session, args):
    if not args:
        return Result("text", session.system_prompt)
    session.set_system("" if args == "reset" else args)
    return Result("text", "system prompt reset to the preset" if args == "reset" else "system prompt set")
