"""Profiles shipped inside the package (medchat/app/profiles_builtin/NAME/), installed on first run.

A shipped folder is what `medchat profiles export NAME DIR` writes: a PEFT adapter dir
(adapter_config.json + adapter_model.safetensors, stored in 16-bit) plus medchat_profile.toml, the
manifest. On start (chat/ask build their engine; `profiles list`) each shipped profile is installed
through ProfileStore.install (atomic: staging dir + rename) when

  - the store has no profile of that name,
  - it was never installed into this MEDCHAT_HOME before (marker file `builtin_profiles.json`), and
  - its base fingerprint equals the current base's (a doctor adapter made for smollm2-135m is not
    installed next to another base).

Choice: a user who removes a shipped profile keeps it removed; the marker remembers the install, so it
is not put back on the next start (`medchat profiles import medchat/app/profiles_builtin/doctor --name
doctor` restores it).

Upgrades: when a newer medchat ships a new version of a profile (another `created` stamp), it replaces
the installed one only if that is still the earlier shipped version, untouched: its manifest's `created`
is the stamp the marker recorded at install (or, for markers written before stamps were recorded, one
of EARLIER_RELEASES). A profile the user trained or imported under that name keeps its own stamp and
is never replaced. The shipped doctor changes with the prompt it was trained for, so an old one would
otherwise be fed a prompt it never saw.

`default_profile` names the profile chat/ask use when no --profile is given: `doctor` when installed
and made for the loaded base, else None (the base). `--profile base` and `/use base` still pick base.
"""

from __future__ import annotations

import json
from pathlib import Path

from medchat.core import paths
from medchat.core.errors import UserError
from medchat.core.profiles import Profile, ProfileStore

BUILTIN_DIR = Path(__file__).parent / "profiles_builtin"
MANIFEST = "medchat_profile.toml"
MARKER = "builtin_profiles.json"
DEFAULT_CHAT_PROFILE = "doctor"
# `created` stamps of shipped profiles installed under markers that held only a fingerprint
EARLIER_RELEASES = {"doctor": ("2026-11-26T17:32:05+00:00", "2026-11-27T08:57:31+00:00")}


def shipped(builtin_dir: Path | None = None) -> dict[str, Path]:
    """name -> folder of every complete shipped profile (in BUILTIN_DIR unless told otherwise)."""
    builtin_dir = Path(builtin_dir or BUILTIN_DIR)
    if not builtin_dir.is_dir():
        return {}
    return {d.name: d for d in sorted(builtin_dir.iterdir())
            if d.is_dir() and (d / MANIFEST).is_file() and (d / "adapter_config.json").is_file()}


def read_manifest(folder: Path) -> Profile:
    return Profile.from_toml((folder / MANIFEST).read_text(encoding="utf-8"))


def _marker_path() -> Path:
    return paths.home() / MARKER


def installed_before() -> dict:
    try:
        return json.loads(_marker_path().read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _prepared_base_dir(base: str) -> Path | None:
    """The base's HF dir if it is ready without work (no GGUF conversion or download)."""
    from medchat.core.models import _EMBEDDED, resolve_base

    if base in _EMBEDDED:
        cache = paths.models_dir() / base
        return cache if (cache / ".complete").exists() else None
    path = Path(base).expanduser()
    return resolve_base(base) if path.is_dir() else None


def install_builtin(store: ProfileStore | None = None, model_dir: Path | None = None,
                    builtin_dir: Path | None = None) -> list[str]:
    """Install the shipped profiles that are due (see the module doc); return the names installed.

    `model_dir`: the base that will be loaded; None uses each profile's own base when it is
    already prepared. A profile for another base is left alone."""
    from medchat.core.models import fingerprint

    found = shipped(builtin_dir)
    if not found:
        return []
    store = store or ProfileStore()
    done = installed_before()
    fingerprints: dict[Path, str] = {}
    installed = []
    for name, folder in found.items():
        prof = read_manifest(folder)
        upgrade = name in done and _outdated_shipped(store, name, done[name], prof)
        if name in done and not upgrade:
            continue
        if store.exists(name) and not upgrade:  # the user's own (trained or imported) profile of that name wins
            continue
        base_dir = model_dir or _prepared_base_dir(prof.base)
        if base_dir is None:
            continue
        if base_dir not in fingerprints:
            fingerprints[base_dir] = fingerprint(base_dir)
        if prof.base_fingerprint != fingerprints[base_dir]:
            continue
        prof.name, prof.chain, prof.path = name, [name], None
        try:
            store.install(prof, folder, overwrite=upgrade)
        except UserError:  # another medchat process installed it a moment ago
            if not store.exists(name):
                raise
        done[name] = {"fingerprint": prof.base_fingerprint, "created": prof.created}
        paths.atomic_write_text(_marker_path(), json.dumps(done, indent=1))
        installed.append(name)
    return installed


def _outdated_shipped(store: ProfileStore, name: str, record, shipped_prof: Profile) -> bool:
    """The installed `name` is an earlier shipped version, untouched, and `shipped_prof` is another one."""
    if not store.exists(name):
        return False  # removed by the user: stays removed
    try:
        created = store.get(name).created
    except UserError:
        return False
    if created == shipped_prof.created:
        return False
    if isinstance(record, dict):
        return created == record.get("created")
    return created in EARLIER_RELEASES.get(name, ())


def default_profile(store: ProfileStore, base_fingerprint: str) -> str | None:
    """`doctor` when it is installed, can chat and was made for the loaded base; else None."""
    if not store.exists(DEFAULT_CHAT_PROFILE):
        return None
    prof = store.get(DEFAULT_CHAT_PROFILE)
    if prof.kind != "chat" or (prof.base_fingerprint and prof.base_fingerprint != base_fingerprint):
        return None
    return prof.name


def install_shipped(store: ProfileStore, base: str | None) -> None:
    """First run of a command that loads `base` (chat, ask, eval): prepare it and install the shipped
    profiles made for it, saying so on stderr. Never a reason for the command to fail."""
    import sys

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
    except Exception as exc:  # noqa: BLE001 - a broken shipped folder must not stop the command
        print(f"medchat: could not install the shipped profiles ({exc})", file=sys.stderr)
