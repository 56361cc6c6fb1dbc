"""AppConfig: the user's settings from `config.toml`, read when a command starts and passed explicitly.

    [safety]
    region = "UK"              # emergency and crisis numbers in triage guidance (see triage/guidance.py)
    emergency_number = ""      # overrides the region's number when set

    [chat]
    key_facts = true           # show verbatim "From the knowledge base" sentences after each answer
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from medchat.core.errors import UserError

# section.key -> (field, type)
KEYS = {"safety.region": ("region", str), "safety.emergency_number": ("emergency_number", str),
        "chat.key_facts": ("key_facts", bool)}


@dataclass(frozen=True)
class AppConfig:
    region: str = "auto"
    emergency_number: str = ""
    key_facts: bool = True

    @classmethod
    def load(cls, path: Path | None = None) -> "AppConfig":
        from medchat.core import paths

        path = Path(path or paths.config_file())
        if not path.exists():
            return cls()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: not valid TOML ({exc}); fix or delete the file") from exc
        values = {}
        for dotted, (name, kind) in KEYS.items():
            section, key = dotted.split(".")
            raw = data.get(section, {}).get(key) if isinstance(data.get(section), dict) else None
            if raw is None:
                continue
            if not isinstance(raw, kind):
                raise UserError(f"{path}: {dotted} must be a {kind.__name__}, got {raw!r}")
            values[name] = raw
        return cls(**values)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}
