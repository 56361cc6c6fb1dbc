"""Options shared by every command that loads a model, and building an engine from them."""

from __future__ import annotations

import argparse
import os

from medchat.core.errors import UserError
from medchat.core.models import DEFAULT_BASE, LoadOptions


def add_model_options(p: argparse.ArgumentParser, profile: bool = True) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--base", default=None, help=f"base model: {DEFAULT_BASE} (default), a local HF dir, or a hub id")
    if profile:
        g.add_argument("--profile", "-p", default=None, help="profile to activate (default: doctor when installed, else base)")
    g.add_argument("--device", default=None, help="cuda | mps | cpu (default: best available)")
    g.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: per device)")
    g.add_argument("--load-in-4bit", action="store_true", help="CUDA only: 4-bit NF4 base (bitsandbytes)")
    g.add_argument("--load-in-8bit", action="store_true", help="CUDA only: 8-bit base (bitsandbytes)")
    g.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code to run")
    g.add_argument("--no-fast", action="store_true", help="use plain transformers+peft instead of the fast path")
    g.add_argument("--decode-mode", default=None,
                   help="fast-path numerics on CPU: dynamic-int8 (default) | int8w-bf16 | int8w-fp32 | float "
                        "(env MEDCHAT_DECODE_MODE)")


def load_options(args) -> LoadOptions:
    return LoadOptions(device=args.device, dtype=args.dtype, load_in_4bit=args.load_in_4bit,
                       load_in_8bit=args.load_in_8bit, trust_remote_code=args.trust_remote_code)


def base_for(args, store) -> str | None:
    """--base wins; otherwise a --profile names its own base, so `ask -p covid-sft` just works."""
    if args.base:
        return args.base
    name = getattr(args, "profile", None)
    if name and name != "base":
        prof = store.get(name)
        return prof.base or None
    return None


def decode_mode(args) -> str | None:
    """--decode-mode wins, then MEDCHAT_DECODE_MODE (or the older MEDCHAT_QUANT); None = the engine's default."""
    return (getattr(args, "decode_mode", None) or os.environ.get("MEDCHAT_DECODE_MODE")
            or os.environ.get("MEDCHAT_QUANT") or None)


def make_engine(args):
    import torch

    from medchat.core.engine import ChatEngine
    from medchat.core.profiles import ProfileStore

    store = ProfileStore()
    name = getattr(args, "profile", None)
    if name:
        prof = store.get(name)  # fail fast with the clear unknown-profile line, before loading a model
        if prof.kind != "chat":
            raise UserError(f"'{name}' is a {prof.kind} profile: it scores replies and cannot chat; "
                            f"pass it as --reward {name} instead")
    install_shipped(store, base_for(args, store))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    engine = ChatEngine(base_for(args, store), load_options(args), store=store, fast=not args.no_fast,
                        decode_mode=decode_mode(args))
    if not name:  # no --profile: the shipped doctor when it fits this base (`--profile base` opts out)
        from medchat.app.builtin_profiles import default_profile

        name = default_profile(store, engine.info["fingerprint"])
    if name:
        engine.use(name)
    return engine


def install_shipped(store, base: str | None) -> None:
    """First run: install the profiles shipped in the package; never a reason for chat to fail."""
    import sys

    from medchat.app.builtin_profiles import install_builtin, shipped
    from medchat.core.models import resolve_base

    if not shipped():
        return
    try:
        model_dir = resolve_base(base)
    except UserError:  # loading the engine reports this, once
        return
    try:
        for name in install_builtin(store, model_dir=model_dir):
            print(f"medchat: installed the shipped profile '{name}'", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - a broken shipped folder must not stop the chat
        print(f"medchat: could not install the shipped profiles ({exc})", file=sys.stderr)


def show_result(result: dict, as_json: bool, table=None, lines=None) -> int:
    """Print a command's result: the JSON object, or `table(result)` and the `lines(result)` under it."""
    import json

    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console

    console = Console()
    if table is not None:
        console.print(table(result))
    for line in (lines(result) if lines is not None else []):
        console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    return 0
