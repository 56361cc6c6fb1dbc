"""Options shared by every command that loads a model, and building an engine from them."""

from __future__ import annotations

import argparse

from medchat.core.errors import UserError
from medchat.core.models import DEFAULT_BASE, LoadOptions


def add_model_options(p: argparse.ArgumentParser, profile: bool = True) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--base", default=None, help=f"base model: {DEFAULT_BASE} (default), a local HF dir, or a hub id")
    if profile:
        g.add_argument("--profile", "-p", default=None,
                       help="profile to activate (default: config chat.profile, else doctor when installed, else base)")
    g.add_argument("--device", default=None, help="cuda | mps | cpu (default: best available)")
    g.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: per device)")
    g.add_argument("--load-in-4bit", action="store_true", help="CUDA only: 4-bit NF4 base (bitsandbytes)")
    g.add_argument("--load-in-8bit", action="store_true", help="CUDA only: 8-bit base (bitsandbytes)")
    g.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code to run")
    g.add_argument("--no-fast", action="store_true", help="use plain transformers+peft instead of the fast path")
    g.add_argument("--decode-mode", default=None,
                   help="fast-path numerics on CPU: q4-gguf (default: the embedded GGUF's own 4-bit weights, "
                        "faithful; float for other bases) | float | dynamic-int8 (lossy) | int8w-bf16 | int8w-fp32 "
                        "(config engine.decode_mode, env MEDCHAT_DECODE_MODE)")
    g.add_argument("--threads", type=int, default=None,
                   help="torch threads for generation (config engine.threads, env MEDCHAT_THREADS; "
                        "0 = torch's default)")


def add_kb_options(p: argparse.ArgumentParser) -> None:
    kb = p.add_mutually_exclusive_group()
    kb.add_argument("--kb", default=None, help="knowledge base to cite (default: the built-in one; config chat.kb)")
    kb.add_argument("--no-kb", action="store_true", help="answer without the knowledge base")


def app_config(args):
    """The effective AppConfig: config.toml, then the environment, then this command's flags."""
    from medchat.core.config import from_environment

    kb = False if getattr(args, "no_kb", False) else (True if getattr(args, "kb", None) else None)
    return from_environment(flags={"decode_mode": getattr(args, "decode_mode", None),
                                   "default_profile": getattr(args, "profile", None),
                                   "threads": getattr(args, "threads", None), "kb": kb,
                                   "region": getattr(args, "region", None)})


def kb_name(args, config) -> str | None:
    """The knowledge base to cite: --kb NAME, else the built-in one; None when off (--no-kb, chat.kb = false)."""
    return (getattr(args, "kb", None) or "default") if config.kb else None


def add_generation_options(p, defaults=None, names: tuple[str, ...] | None = None) -> None:
    """--max-new-tokens, --temperature, ... from GenerationSettings (one declaration); `defaults` (shown in
    the help) are what a flag left out means: it stays None, and `generation_from` keeps the default."""
    from dataclasses import fields

    from medchat.core.settings import SETTING_HELP, GenerationSettings

    for f in fields(GenerationSettings):
        if names is None or f.name in names:
            kind = float if f.name in ("temperature", "top_p", "repetition_penalty") else int
            shown = f" (default {getattr(defaults, f.name)})" if defaults is not None else ""
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None, help=SETTING_HELP[f.name] + shown)


def generation_from(args, defaults=None):
    """The GenerationSettings of `defaults` with the generation flags given on this command line."""
    from dataclasses import fields

    from medchat.core.settings import GenerationSettings

    defaults = defaults or GenerationSettings()
    return defaults.with_values({f.name: getattr(args, f.name, None) for f in fields(GenerationSettings)})


def load_options(args) -> LoadOptions:
    return LoadOptions(device=args.device, dtype=args.dtype, load_in_4bit=args.load_in_4bit,
                       load_in_8bit=args.load_in_8bit, trust_remote_code=args.trust_remote_code)


def base_for(args, store, name: str | None = None) -> str | None:
    """--base wins; otherwise the profile (`name`, else --profile) names its own base, so
    `ask -p covid-sft` just works."""
    if args.base:
        return args.base
    name = name or getattr(args, "profile", None)
    if name and name != "base":
        prof = store.get(name)
        return prof.base or None
    return None


def make_engine(args, config=None):
    """The engine for a command's model options; `config` (default: `app_config(args)`) supplies the
    profile and decode mode that no flag set."""
    from medchat.core.engine import ChatEngine
    from medchat.core.profiles import ProfileStore, require_chat

    config = config or app_config(args)  # its thread budget: set at start-up (cli.configure_process)
    store = ProfileStore()
    name = config.default_profile or None
    if name:
        # fail fast, before loading a model
        require_chat(store.get(name), hint=f"pass it as --reward {name} instead")
    base = base_for(args, store, name)
    from medchat.app.builtin_profiles import install_shipped

    install_shipped(store, base)
    engine = ChatEngine(base, load_options(args), store=store, fast=not args.no_fast,
                        decode_mode=config.decode_mode or None, adaptive_threads=not config.threads)
    if not name:  # no profile chosen: the shipped doctor when it fits this base (`--profile base` opts out)
        from medchat.app.builtin_profiles import default_profile

        name = default_profile(store, engine.info["fingerprint"])
    if name:
        engine.use(name)
    return engine


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
