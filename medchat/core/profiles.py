"""The profile store: named chat configurations under MEDCHAT_HOME/profiles/NAME/.

Each profile dir holds `profile.toml` (the manifest) and, unless it is the built-in `base`,
`adapter/` (a standard PEFT dir). A profile's `chain` lists the profiles whose adapters are
active together, parents first, ending with itself: covid-ppo -> ["covid-sft", "covid-ppo"].
Parents are referenced, not copied, so `remove` refuses while a child stacks on a profile.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tomli_w

from medchat.core import paths
from medchat.core.errors import UserError

BASE_PROFILE = "base"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PICKLED_WEIGHTS = "adapter_model.bin"


@dataclass
class Profile:
    name: str
    base: str = ""  # base model id as given to --base (embedded name, hub id, or abs dir)
    base_fingerprint: str = ""
    base_revision: str = ""  # hub bases: the snapshot commit the base resolved to; "" for local/embedded
    kind: str = "chat"  # chat | reward
    chain: list[str] = field(default_factory=list)  # adapters active together, parents first
    stage: str = ""  # pt | sft | rm | ppo | dpo | import
    method: str = ""  # lora | qlora
    datasets: list[dict] = field(default_factory=list)  # [{name, sha256, rows}]
    recipe: str = ""  # the trainer recipe that made it (trainer/recipes/NAME.yaml), if any
    metrics: dict = field(default_factory=dict)
    created: str = ""
    chat_template: str = ""  # empty: the tokenizer's own
    system_prompt: str = ""  # empty: the doctor preset
    generation: dict = field(default_factory=dict)  # GenerationSettings overrides
    kb: str = ""  # knowledge base bound to this profile ("" = default, "none" = off)
    description: str = ""
    allow_pickle: bool = False  # only set by an explicit flag at import time
    path: Path | None = None  # where it lives; not written to the manifest

    @property
    def is_base(self) -> bool:
        return self.name == BASE_PROFILE

    def to_toml(self) -> str:
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        return tomli_w.dumps(data)

    @classmethod
    def from_toml(cls, text: str, path: Path | None = None) -> "Profile":
        data = tomllib.loads(text)
        known = set(cls.__dataclass_fields__) - {"path"}
        values = {k: v for k, v in data.items() if k in known}
        _check_types(values)
        prof = cls(**values)
        prof.path = path
        return prof


_FIELD_TYPES = {"chain": list, "datasets": list, "metrics": dict, "generation": dict, "allow_pickle": bool}


def _check_types(values: dict) -> None:
    """A hand-edited manifest with `chain = 3` or `name = 1` fails here, not deep inside a command."""
    for key, value in values.items():
        kind = _FIELD_TYPES.get(key, str)
        if not isinstance(value, kind):
            raise TypeError(f"'{key}' must be a {kind.__name__}, got {type(value).__name__}")
    if not all(isinstance(link, str) for link in values.get("chain", [])):
        raise TypeError("'chain' must list profile names")
    if not all(isinstance(ds, dict) for ds in values.get("datasets", [])):
        raise TypeError("'datasets' must be a list of tables")


def require_chat(profile: "Profile", doing: str = "chat", hint: str = "") -> "Profile":
    """The one rule that only chat profiles write replies: a reward profile is a one-line UserError."""
    if profile.kind != "chat":
        raise UserError(f"'{profile.name}' is a {profile.kind} profile and cannot {doing}{'; ' + hint if hint else ''}")
    return profile


def require_reward(profile: "Profile", flag: str = "--reward", hint: str = "") -> "Profile":
    """The one rule that only reward profiles score replies."""
    if profile.kind != "reward":
        raise UserError(f"{flag} {profile.name}: '{profile.name}' is a {profile.kind} profile, not a reward model; "
                        f"{hint or 'pass a profile trained with --stage rm'}")
    return profile


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in (".", ".."):
        raise UserError(
            f"invalid profile name '{name}': use 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. covid-sft)"
        )
    return name


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def check_adapter_dir(adapter: Path, allow_pickle: bool = False) -> dict:
    """Validate a PEFT LoRA adapter dir; return its adapter_config.json as a dict."""
    adapter = Path(adapter)
    cfg_path = adapter / "adapter_config.json"
    if not cfg_path.exists():
        raise UserError(f"'{adapter}' is not a PEFT adapter directory (no adapter_config.json)")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
        raise UserError(f"corrupt adapter_config.json in '{adapter}': {exc}") from None
    if not isinstance(cfg, dict):
        raise UserError(f"corrupt adapter_config.json in '{adapter}': expected a JSON object")
    if str(cfg.get("peft_type", "")).upper() != "LORA":
        raise UserError(f"'{adapter}' holds a {cfg.get('peft_type')} adapter; only LoRA adapters are supported")
    if not (adapter / ADAPTER_WEIGHTS).exists():
        if (adapter / PICKLED_WEIGHTS).exists():
            if not allow_pickle:
                raise UserError(
                    f"'{adapter}' has only pickled weights ({PICKLED_WEIGHTS}), which can run code when "
                    "loaded; re-run with --allow-pickle if you trust it"
                )
        else:
            raise UserError(f"'{adapter}' has no {ADAPTER_WEIGHTS}")
    else:
        from safetensors import safe_open

        try:
            with safe_open(adapter / ADAPTER_WEIGHTS, "pt") as fh:
                if not list(fh.keys()):
                    raise UserError(f"'{adapter}/{ADAPTER_WEIGHTS}' holds no tensors")
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"corrupt adapter weights in '{adapter}': {exc}") from None
    return cfg


class ProfileStore:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else paths.profiles_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        paths.sweep_staging(self.root)

    # --- reading -------------------------------------------------------------------------
    def names(self) -> list[str]:
        found = sorted(p.name for p in self.root.iterdir()
                       if p.is_dir() and not p.name.startswith(".") and (p / "profile.toml").exists())
        return [BASE_PROFILE] + [n for n in found if n != BASE_PROFILE]

    def list(self) -> list[Profile]:
        return [self.get(n) for n in self.names()]

    def exists(self, name: str) -> bool:
        return name == BASE_PROFILE or (self.root / name / "profile.toml").exists()

    def get(self, name: str) -> Profile:
        prof = self._read(name)
        if prof.name != name:  # a hand-copied dir: chains and listings would name another profile
            raise UserError(f"profile manifest {prof.path / 'profile.toml'} says name = '{prof.name}' but its "
                            f"directory is '{name}'; make them match (edit the manifest or rename the directory)")
        return prof

    def _read(self, name: str) -> Profile:
        if name == BASE_PROFILE:
            return Profile(name=BASE_PROFILE, stage="base", description="the base model, no adapter")
        validate_name(name)
        path = self.root / name
        manifest = path / "profile.toml"
        if not manifest.exists():
            known = ", ".join(self.names())
            raise UserError(f"unknown profile '{name}'; installed profiles: {known}")
        try:
            return Profile.from_toml(manifest.read_text(encoding="utf-8"), path=path)
        except (tomllib.TOMLDecodeError, TypeError, UnicodeDecodeError) as exc:
            raise UserError(f"corrupt manifest {manifest}: {exc}; remove it with `medchat profiles remove {name} --force`") from None

    def adapter_dir(self, name: str) -> Path:
        return self.root / validate_name(name) / "adapter"

    def chain_dirs(self, profile: Profile) -> list[tuple[str, Path]]:
        """(name, adapter dir) for each adapter in the profile's chain, parents first."""
        out = []
        for link in profile.chain:
            if not self.exists(link):
                raise UserError(f"profile '{profile.name}' stacks on '{link}', which was removed; "
                                f"reinstall '{link}' or remove '{profile.name}'")
            out.append((link, self.adapter_dir(link)))
        return out

    def children(self, name: str) -> list[str]:
        readable = [self._read(n) for n in self.names()]  # tolerant, so a mismatched dir can be fixed
        return [p.name for p in readable if not p.is_base and p.name != name and name in p.chain]

    # --- writing -------------------------------------------------------------------------
    def install(self, profile: Profile, adapter_src: Path | None, overwrite: bool = False) -> Profile:
        """Atomically install: copy the adapter and write the manifest in a staging dir, then rename."""
        validate_name(profile.name)
        if profile.name == BASE_PROFILE:
            raise UserError("'base' is the built-in profile; choose another name")
        final = self.root / profile.name
        if final.exists() and not overwrite:
            raise UserError(f"profile '{profile.name}' already exists; choose another --name or remove it first")
        if not profile.chain or profile.chain[-1] != profile.name:
            profile.chain = [*profile.chain, profile.name]
        profile.created = profile.created or now_iso()
        if adapter_src is not None:
            check_adapter_dir(adapter_src, allow_pickle=profile.allow_pickle)
        with paths.staging_dir(final) as tmp:
            if adapter_src is not None:
                shutil.copytree(adapter_src, tmp / "adapter",
                                ignore=shutil.ignore_patterns("README.md", "*.pt", "optimizer*", "rng_state*"))
            (tmp / "profile.toml").write_text(profile.to_toml(), encoding="utf-8")
        profile.path = final
        return profile

    def update(self, profile: Profile) -> None:
        paths.atomic_write_text(self.root / profile.name / "profile.toml", profile.to_toml())

    def remove(self, name: str, force: bool = False) -> None:
        prof = self._read(name)  # a manifest that names another directory can still be removed
        if prof.is_base:
            raise UserError("the built-in 'base' profile cannot be removed")
        kids = self.children(name)
        if kids and not force:
            raise UserError(f"'{name}' is stacked on by {', '.join(kids)}; remove those first or pass --force")
        trash = self.root / f".staging-removed-{name}"
        (self.root / name).rename(trash)  # atomic: the profile vanishes from listings at once
        shutil.rmtree(trash, ignore_errors=True)

    def rename(self, old: str, new: str) -> Profile:
        prof = self.get(old)
        validate_name(new)
        if prof.is_base or new == BASE_PROFILE:
            raise UserError("the built-in 'base' profile cannot be renamed")
        if self.exists(new):
            raise UserError(f"profile '{new}' already exists")
        kids = [self.get(k) for k in self.children(old)]
        # Crash-safe order: the new dir appears complete (manifest already naming it), then the
        # children are repointed, then the old dir goes. A kill at any point leaves profiles that all
        # load (at worst under both names), never a dir whose manifest names another profile.
        prof.name, prof.chain = new, [new if c == old else c for c in prof.chain]
        with paths.staging_dir(self.root / new) as tmp:
            shutil.copytree(self.root / old, tmp, dirs_exist_ok=True, copy_function=_link_or_copy)
            (tmp / "profile.toml").unlink()  # a hard link to the old manifest: write a new file instead
            (tmp / "profile.toml").write_text(prof.to_toml(), encoding="utf-8")
        for kid in kids:
            kid.chain = [new if c == old else c for c in kid.chain]
            self.update(kid)
        trash = self.root / f".staging-removed-{old}"
        (self.root / old).rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        return self.get(new)


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link (no adapter bytes copied) where the filesystem allows it, else copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
