"""`medchat chat` (also bare `medchat`): the Textual TUI, or the plain REPL with --plain or when
stdin/stdout is not a terminal. The TUI is imported only here, when a chat opens."""

from __future__ import annotations

import sys

from medchat.app.cli.common import add_model_options, make_engine


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat in the terminal (the default command)")
    add_model_options(p)
    p.add_argument("--continue", dest="resume", action="store_true", help="resume the last conversation")
    p.add_argument("--plain", action="store_true", help="plain line-based REPL instead of the full-screen TUI")
    kb = p.add_mutually_exclusive_group()
    kb.add_argument("--kb", default="default", help="knowledge base to cite (default: the built-in one)")
    kb.add_argument("--no-kb", action="store_true", help="answer without the knowledge base")
    p.set_defaults(func=run)


def use_plain(args, stdin=None, stdout=None) -> bool:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    return bool(args.plain) or not (stdin.isatty() and stdout.isatty())


def check_args(args) -> None:
    """Fail fast, before any model loads or the screen switches, on names that do not exist."""
    from medchat.core.profiles import ProfileStore

    if args.profile:
        ProfileStore().get(args.profile)
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
    from medchat.core.config import AppConfig
    from medchat.app.session import ChatSession
    from medchat.app.triage import load_triager

    progress = progress or (lambda label: None)
    notes = notes if notes is not None else []
    config = config or AppConfig()
    engine = make_engine(args)
    session = ChatSession(engine, history=history, kb=None if args.no_kb else args.kb,
                          triage=load_triager(config.region, config.emergency_number or None),
                          key_facts=config.key_facts)
    if session.kb_name is not None:
        # the first use of a KB may build its index (minutes): do it now, under the loading label,
        # rather than inside the first reply
        progress(f"preparing knowledge base {session.kb_name}…")
        try:
            import kb as kbmod

            kbmod.retrieve("warm-up", kb=session.kb_name, k=1)
        except Exception as exc:  # chat still works without it
            notes.append(f"knowledge base '{session.kb_name}' is unavailable ({exc}); answering without it. "
                         "/kb on tries again")
            session.kb_name = None
    if args.resume:
        last = history.last_conversation()
        if last is not None:
            session.load(last["id"])
    return session


def loading_label(args) -> str:
    from medchat.core.models import DEFAULT_BASE

    base = args.base or DEFAULT_BASE
    if args.profile and not args.base:
        from medchat.app.cli.common import base_for
        from medchat.core.profiles import ProfileStore

        base = base_for(args, ProfileStore()) or DEFAULT_BASE
    name = str(base).rstrip("/").rsplit("/", 1)[-1]
    return f"loading {name}…"


def run(args) -> int:
    from medchat.core.config import AppConfig
    from medchat.app.history.store import HistoryStore
    from medchat.app.triage import disclaimer, region_for

    check_args(args)
    config = AppConfig.load()
    where = region_for(config)  # an unknown region is reported now, not at the first emergency
    history = HistoryStore()
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

        progress(loading_label(args))
        session = build_session(args, history, progress, notes, config)
        for line in notes:
            print(f"medchat: {line}", file=sys.stderr)
        return run_repl(session, tty=tty)
    from medchat.app.tui.app import MedchatApp

    app = MedchatApp(loader=lambda: build_session(args, history, lambda label: app.call_from_thread(app.set_loading, label),
                                                  notes, config),
                     loading_label=loading_label(args), notices=notes, disclaimer=disclaimer(where=where),
                     history=history)
    app.run()
    if app.load_error:
        print(f"medchat: {app.load_error}", file=sys.stderr)
        return 1
    return 0
