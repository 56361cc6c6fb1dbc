"""`medchat chat` (also bare `medchat`): the Textual TUI, or the plain REPL with --plain or when
stdin/stdout is not a terminal. The TUI is imported only here, when a chat opens."""

from __future__ import annotations

import sys

from medchat.app.cli.common import add_kb_options, add_model_options, app_config, kb_name, make_engine


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat in the terminal (the default command)")
    add_model_options(p)
    p.add_argument("--continue", dest="resume", action="store_true", help="resume the last conversation")
    p.add_argument("--plain", action="store_true", help="plain line-based REPL instead of the full-screen TUI")
    add_kb_options(p)
    p.set_defaults(func=run)


def use_plain(args, stdin=None, stdout=None) -> bool:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    return bool(args.plain) or not (stdin.isatty() and stdout.isatty())


def check_args(args, config=None) -> None:
    """Fail fast, before any model loads or the screen switches, on names that do not exist."""
    from medchat.core.profiles import ProfileStore

    profile = config.default_profile if config is not None else args.profile
    if profile:
        ProfileStore().get(profile)
    if not args.no_kb and args.kb not in (None, "default"):
        import kb as kbmod

        from medchat.core.errors import UserError

        if args.kb not in {k["name"] for k in kbmod.list_kbs()}:
            raise UserError(f"unknown knowledge base '{args.kb}'; see `medchat kb list` or build one with `medchat kb build`")


def build_session(args, history, progress=None, notes: list | None = None, config=None):
    """Load the model (and open the knowledge base) and wrap them in a session.

    Slow, so the TUI calls it in a worker thread; `progress(label)` reports each stage and `notes`
    collects lines to show once the chat opens.
    """
    import kb as kbmod

    from medchat.app.session import ChatSession
    from medchat.app.triage import load_triager, warm as warm_triage

    progress = progress or (lambda label: None)
    notes = notes if notes is not None else []
    config = config or app_config(args)
    name = kb_name(args, config)
    # the first use of a KB may build its index (minutes): start it now, beside the model load,
    # rather than inside the first reply
    warming = kbmod.warm(name) if name is not None else None
    warm_triage()
    engine = make_engine(args, config)
    session = ChatSession(engine, history=history, kb=name,
                          triage=load_triager(config.region, config.emergency_number or None),
                          key_facts=config.key_facts, lead=config.kb_lead)
    if warming is not None:
        progress(f"preparing knowledge base {name}…")
        exc = warming.exception()
        if exc is not None:  # chat still works without it
            notes.append(f"knowledge base '{name}' is unavailable ({exc}); answering without it. "
                         "/kb on tries again")
            session.kb_name = None
    if args.resume:
        last = history.last_conversation()
        if last is not None:
            session.load(last["id"])
    return session


def loading_label(args, config=None) -> str:
    from medchat.core.models import DEFAULT_BASE

    base = args.base or DEFAULT_BASE
    profile = config.default_profile if config is not None else args.profile
    if profile and not args.base:
        from medchat.app.cli.common import base_for
        from medchat.core.profiles import ProfileStore

        base = base_for(args, ProfileStore(), profile) or DEFAULT_BASE
    name = str(base).rstrip("/").rsplit("/", 1)[-1]
    return f"loading {name}…"


def expire_history(history, days: int) -> int:
    """history.retention_days: delete the conversations untouched for longer; 0 keeps them all."""
    if days <= 0:
        return 0
    import datetime as dt

    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
    return history.purge(before=cutoff.isoformat(timespec="microseconds"))


def run(args) -> int:
    from medchat.app.history.store import HistoryStore
    from medchat.app.triage import disclaimer, region_for

    config = app_config(args)
    check_args(args, config)
    where = region_for(config)  # an unknown region is reported now, not at the first emergency
    history = HistoryStore()
    expire_history(history, config.history_retention_days)
    notes: list[str] = []
    if args.resume:
        last = history.last_conversation()
        notes.append(f"continuing conversation {last['id']}" if last else "no earlier conversation; starting a new one")
    if use_plain(args):
        from medchat.app.repl import run_repl

        tty = sys.stdin.isatty()

        def progress(label):
            if tty:
                print(label, file=sys.stderr, flush=True)

        progress(loading_label(args, config))
        session = build_session(args, history, progress, notes, config)
        for line in notes:
            print(f"medchat: {line}", file=sys.stderr)
        return run_repl(session, tty=tty)
    from medchat.app.tui.app import MedchatApp

    app = MedchatApp(loader=lambda: build_session(args, history, lambda label: app.call_from_thread(app.set_loading, label),
                                                  notes, config),
                     loading_label=loading_label(args, config), notices=notes, disclaimer=disclaimer(where=where),
                     history=history)
    app.run()
    if app.load_error:
        print(f"medchat: {app.load_error}", file=sys.stderr)
        return 1
    return 0
