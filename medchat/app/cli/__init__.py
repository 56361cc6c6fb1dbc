"""`medchat` entry point: one argparse tree; each room registers its own subcommands.

User errors (UserError) print one line and exit non-zero; anything else is a bug and keeps its
traceback (set MEDCHAT_DEBUG=1 to see tracebacks of user errors too).
"""

from __future__ import annotations

import argparse
import os
import sys

from medchat.core.errors import EXIT_INTERRUPTED, EXIT_USAGE, UserError


EXIT_CODES = """exit codes:
  0    success
  1    runtime failure (a missing file, an unknown profile, a busy database...)
  2    usage error (bad arguments or option values on the command line)
  130  interrupted (Ctrl-C)"""


def build_parser() -> argparse.ArgumentParser:
    from kb import cli as kb_cli
    from medchat import __version__
    from medchat.app.cli import ask, bench_cmd, chat, config_cmd, eval_cmd, history_cmd, profiles_cmd, triage_cmd
    from trainer import cli as trainer_cli

    parser = argparse.ArgumentParser(prog="medchat", description="Private, offline doctor-style chat that fine-tunes its own models.",
                                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"medchat {__version__}")
    parser.add_argument("--verbose", action="store_true",
                        help="show the libraries' own progress bars, logs and warnings (hidden by default)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (ask, profiles_cmd, bench_cmd, chat, history_cmd, triage_cmd, config_cmd, kb_cli, trainer_cli,
                   eval_cmd):
        module.register(sub)  # kb_cli and trainer_cli: the subcommands the rooms own
    return parser


def hub_offline() -> None:
    """medchat never reaches for the model hub. huggingface_hub reads HF_HUB_OFFLINE once, when it is
    first imported, so this runs at process start, before any command imports it. A value the user
    set explicitly (e.g. HF_HUB_OFFLINE=0 to fetch a model on purpose) is kept."""
    if not os.environ.get("HF_HUB_OFFLINE", "").strip():
        os.environ["HF_HUB_OFFLINE"] = "1"


def configure_process(args) -> None:
    """Process-wide settings from the AppConfig: the thread budgets of the embedder and, for commands
    that load a model, of torch."""
    from kb.embedder import set_batch_threads
    from medchat.app.cli.common import app_config

    config = app_config(args)
    set_batch_threads(config.embed_threads)
    if hasattr(args, "threads") and config.threads:  # torch is imported only where a model loads anyway
        import torch

        torch.set_num_threads(config.threads)


def main(argv: list[str] | None = None) -> int:
    hub_offline()
    argv = sys.argv[1:] if argv is None else argv
    verbose = "--verbose" in argv  # global, but accepted anywhere: `medchat ask --verbose "q"` works too
    argv = [a for a in argv if a != "--verbose"]
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["chat", *argv]  # bare `medchat [options]` opens the chat
    argv = ["--verbose", *argv] if verbose else argv
    from medchat.core import quiet

    quiet.configure(verbose)  # before any command imports transformers
    try:  # Ctrl-C while the parser imports the rooms is an interruption too, not a traceback
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse: 2 on a usage error, 0 after --help/--version
            return exc.code if isinstance(exc.code, int) else 0
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        if args.command != "config":  # `config` must work to repair a broken config.toml
            configure_process(args)
        return int(args.func(args) or 0)
    except UserError as exc:
        if os.environ.get("MEDCHAT_DEBUG"):
            raise
        print(f"medchat: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("medchat: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
