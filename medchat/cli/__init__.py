"""`medchat` entry point: one argparse tree; each room registers its own subcommands.

User errors (UserError) print one line and exit non-zero; anything else is a bug and keeps its
traceback (set MEDCHAT_DEBUG=1 to see tracebacks of user errors too).
"""

from __future__ import annotations

import argparse
import os
import sys

from medchat.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from medchat import __version__
    from medchat.cli import ask, bench_cmd, profiles_cmd

    parser = argparse.ArgumentParser(prog="medchat", description="Private, offline doctor-style chat that fine-tunes its own models.")
    parser.add_argument("--version", action="version", version=f"medchat {__version__}")
    parser.add_argument("--verbose", action="store_true",
                        help="show the libraries' own progress bars, logs and warnings (hidden by default)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (ask, profiles_cmd, bench_cmd, *_room_modules()):
        module.register(sub)
    return parser


def _room_modules():
    """Subcommands owned by other rooms (trainer, kb, history, eval)."""
    import importlib

    mods = []
    for name in ("medchat.cli.chat", "medchat.cli.history_cmd", "medchat.cli.triage_cmd", "kb.cli", "trainer.cli",
                 "medchat.cli.eval_cmd"):
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but something it needs is missing: a real bug
                raise
    return mods


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verbose = "--verbose" in argv  # global, but accepted anywhere: `medchat ask --verbose "q"` works too
    argv = [a for a in argv if a != "--verbose"]
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["chat", *argv]  # bare `medchat [options]` opens the chat
    argv = ["--verbose", *argv] if verbose else argv
    from medchat import quiet

    quiet.configure(verbose)  # before any command imports transformers
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        if os.environ.get("MEDCHAT_DEBUG"):
            raise
        print(f"medchat: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("medchat: interrupted", file=sys.stderr)
        return 130
