"""Where state lives. Everything is under MEDCHAT_HOME (default: the platformdirs user data dir)."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import platformdirs


def home() -> Path:
    root = os.environ.get("MEDCHAT_HOME") or platformdirs.user_data_dir("medchat", appauthor=False)
    path = Path(root).expanduser()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:  # conversations and models are private: owner only, also for a dir made by an older medchat
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    except OSError:
        pass
    return path


def private_file(path: Path) -> Path:
    """Create `path` if needed and make it readable by its owner only (0600)."""
    path = Path(path)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        path.chmod(0o600)
    except OSError:
        pass
    return path


def _sub(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    return _sub("models")


def profiles_dir() -> Path:
    return _sub("profiles")


def runs_dir() -> Path:
    return _sub("runs")


def kb_dir() -> Path:
    return _sub("kb")


def history_db() -> Path:
    return home() / "history.db"


def config_file() -> Path:
    return home() / "config.toml"


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staging_dir(final: Path):
    """Yield a temp dir beside `final`; on success it is renamed into place atomically.

    A crash leaves only a hidden `.staging-*` dir, which listings ignore and `sweep_staging` removes.
    """
    import shutil

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".staging-{final.name}-"))
    try:
        yield tmp
        if final.exists():
            old = final.parent / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sweep_staging(parent: Path) -> None:
    """Remove leftovers of interrupted installs."""
    import shutil

    for p in Path(parent).glob(".staging-*"):
        shutil.rmtree(p, ignore_errors=True)
