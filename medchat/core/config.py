"""AppConfig: the user's settings, read once when a command starts and passed explicitly.

Each setting comes from, in rising order: its default, `config.toml` in the config dir
(`medchat config path`), its environment variable, then a command-line flag. `SETTINGS` below is the
one list of them: key in the file, type, environment variable, check and meaning.

    [safety]
    region = "UK"              # emergency and crisis numbers in triage guidance (see triage/guidance.py)
    emergency_number = ""      # overrides the region's number when set

    [chat]
    profile = ""               # profile to chat with; "" = the shipped doctor when installed, else base
    kb = true                  # cite the knowledge base (--kb NAME / --no-kb override)
    key_facts = true           # show verbatim "From the knowledge base" sentences after each answer
    kb_lead = true             # start an answer the KB covers with its best sentence, verbatim and cited

    [engine]
    decode_mode = ""           # fast-path numerics on CPU; "" = the engine's default (q4-gguf, else float)
    threads = 0                # torch threads for generation; 0 = torch's default
    embed_threads = 0          # torch threads for embedding many chunks; 0 = fewer on a busy machine

    [history]
    retention_days = 0         # delete conversations untouched for this many days; 0 = keep them all
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Mapping

import tomli_w

from medchat.core.errors import UserError


def _decode_mode(value: str) -> str:
    if not value:
        return ""
    from medchat.core.engine import fast_llama  # imports torch: only when a mode is set

    try:
        return fast_llama.canonical_mode(value)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _between(lo: int, hi: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not lo <= value <= hi:
            raise UserError(f"must be between {lo} and {hi}, got {value}")
        return value
    return check


@dataclass(frozen=True)
class Setting:
    key: str           # section.name in config.toml
    field: str         # the AppConfig attribute
    kind: type         # str | bool | int
    env: tuple         # environment variables, the first found wins
    help: str
    check: Callable | None = None  # value -> canonical value; raises UserError
    costly: bool = False           # check only on `config set`; at load the user of the value checks it


SETTINGS = (
    Setting("safety.region", "region", str, ("MEDCHAT_REGION",), "region code for emergency and crisis numbers"),
    Setting("safety.emergency_number", "emergency_number", str, ("MEDCHAT_EMERGENCY_NUMBER",),
            "overrides the region's emergency number when set"),
    Setting("chat.profile", "default_profile", str, ("MEDCHAT_PROFILE",),
            "profile to chat with; empty = the shipped doctor when installed, else base"),
    Setting("chat.kb", "kb", bool, ("MEDCHAT_KB",), "cite the knowledge base"),
    Setting("chat.key_facts", "key_facts", bool, ("MEDCHAT_KEY_FACTS",),
            "show verbatim knowledge-base sentences after each answer"),
    Setting("chat.kb_lead", "kb_lead", bool, ("MEDCHAT_KB_LEAD",),
            "start an answer the knowledge base covers with its best sentence, verbatim and cited"),
    Setting("engine.decode_mode", "decode_mode", str, ("MEDCHAT_DECODE_MODE", "MEDCHAT_QUANT"),
            "fast-path numerics on CPU: q4-gguf | float (both faithful) | dynamic-int8 (lossy) | int8w-bf16 | int8w-fp32; "
            "empty = default (q4-gguf for the embedded base, else float)",
            _decode_mode, costly=True),
    Setting("engine.threads", "threads", int, ("MEDCHAT_THREADS",), "torch threads for generation; 0 = torch's default",
            _between(0, 1024)),
    Setting("engine.embed_threads", "embed_threads", int, ("MEDCHAT_EMBED_THREADS",),
            "torch threads for embedding many chunks; 0 = fewer on a busy machine", _between(0, 1024)),
    Setting("history.retention_days", "history_retention_days", int, ("MEDCHAT_HISTORY_RETENTION_DAYS",),
            "delete conversations untouched for this many days; 0 = keep them all", _between(0, 365000)),
)
BY_KEY = {s.key: s for s in SETTINGS}
BY_FIELD = {s.field: s for s in SETTINGS}

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse(setting: Setting, raw, strict: bool = True) -> object:
    """A value from TOML (typed) or text (environment, `config set`) as the setting's type, checked.

    strict=False skips the costly checks (the decode mode's imports torch): the engine makes them."""
    kind, value = setting.kind, raw
    if isinstance(raw, str) and kind is not str:
        text = raw.strip().lower()
        if kind is bool and text in _TRUE + _FALSE:
            value = text in _TRUE
        elif kind is int and text.lstrip("-").isdigit():
            value = int(text)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        what = {bool: "true or false", int: "a whole number", str: "a string"}[kind]
        raise UserError(f"{setting.key} must be {what}, got {raw!r}")
    if setting.check is not None and (strict or not setting.costly):
        try:
            value = setting.check(value)
        except UserError as exc:
            msg = str(exc)
            raise UserError(msg if msg.startswith(setting.key) else f"{setting.key}: {msg}") from None
    return value


@dataclass(frozen=True)
class AppConfig:
    region: str = "auto"
    emergency_number: str = ""
    default_profile: str = ""
    kb: bool = True
    key_facts: bool = True
    kb_lead: bool = True
    decode_mode: str = ""
    threads: int = 0
    embed_threads: int = 0
    history_retention_days: int = 0

    @classmethod
    def load(cls, path: Path | None = None, env: Mapping[str, str] | None = None,
             flags: Mapping[str, object] | None = None) -> "AppConfig":
        """The effective settings: defaults < `path` (config.toml) < `env` < `flags` (None values skipped).

        `env` None reads nothing from the environment (tests pass a dict; the CLI passes os.environ)."""
        return cls.resolve(path, env, flags)[0]

    @classmethod
    def resolve(cls, path: Path | None = None, env: Mapping[str, str] | None = None,
                flags: Mapping[str, object] | None = None) -> tuple["AppConfig", dict[str, str]]:
        """(config, {field: "default" | "file" | "env NAME" | "flag"})."""
        values: dict = {}
        sources = {s.field: "default" for s in SETTINGS}
        path = Path(path or config_path())
        for s, raw in read_file(path).items():
            try:
                values[s.field] = parse(s, raw, strict=False)
            except UserError as exc:
                raise UserError(f"{path}: {exc}") from None
            sources[s.field] = "file"
        for s in SETTINGS:
            for name in s.env:
                raw = (env or {}).get(name, "")
                if raw.strip():
                    try:
                        values[s.field] = parse(s, raw, strict=False)
                    except UserError as exc:
                        raise UserError(f"environment {name}: {exc}") from None
                    sources[s.field] = f"env {name}"
                    break
        for name, value in (flags or {}).items():
            if value is not None:
                values[name] = parse(BY_FIELD[name], value, strict=False)
                sources[name] = "flag"
        return cls(**values), sources

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def config_path() -> Path:
    from medchat.core import paths

    return paths.config_file()


def from_environment(path: Path | None = None, flags: Mapping[str, object] | None = None) -> AppConfig:
    """The CLI's one read of the process environment for settings."""
    return AppConfig.load(path, env=os.environ, flags=flags)


def _read_toml(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc}); fix or delete the file") from exc


def read_file(path: Path) -> dict[Setting, object]:
    """The known settings present in config.toml, raw (other keys are ignored)."""
    data = _read_toml(Path(path))
    found = {}
    for s in SETTINGS:
        section, key = s.key.split(".")
        table = data.get(section)
        raw = table.get(key) if isinstance(table, dict) else None
        if raw is not None:
            found[s] = raw
    return found


def set_value(key: str, raw: str, path: Path | None = None) -> object:
    """Check `raw` for `key` and write it to config.toml atomically; the stored value."""
    from medchat.core.paths import atomic_write_text

    setting = BY_KEY.get(key)
    if setting is None:
        raise UserError(f"unknown setting '{key}'; choose one of: {', '.join(BY_KEY)}")
    value = parse(setting, raw)
    path = Path(path or config_path())
    data = _read_toml(path)
    section, name = key.split(".")
    if not isinstance(data.get(section), dict):
        data[section] = {}
    data[section][name] = value
    atomic_write_text(path, tomli_w.dumps(data))
    return value
