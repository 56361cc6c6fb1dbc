"""Where state lives.

With MEDCHAT_HOME set, everything is under that one folder. Without it the platform's folders are used
(platformdirs): data (profiles, knowledge bases, history) in the user data dir, config.toml in the
user config dir, and regenerable files (models converted from GGUF, run scratch) in the user cache dir.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import platformdirs


def _pinned() -> Path | None:
    """MEDCHAT_HOME: one folder for everything (tests, portable installs); None = the platform's folders."""
    root = os.environ.get("MEDCHAT_HOME")
    return Path(root).expanduser() if root else None


def home() -> Path:
    return _private_dir(_pinned() or Path(platformdirs.user_data_dir("medchat", appauthor=False)))


def cache_dir() -> Path:
    """Regenerable files (converted models, runs): MEDCHAT_HOME, else the platform's user cache dir."""
    return home() if _pinned() else _private_dir(Path(platformdirs.user_cache_dir("medchat", appauthor=False)))


def config_dir() -> Path:
    """Where config.toml lives: MEDCHAT_HOME, else the platform's user config dir."""
    return home() if _pinned() else _private_dir(Path(platformdirs.user_config_dir("medchat", appauthor=False)))


def _private_dir(path: Path) -> Path:
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


def _cached(name: str) -> Path:
    """A folder of regenerable files in the cache dir; what an older medchat kept in the data dir moves there."""
    path = cache_dir() / name
    if not path.exists() and cache_dir() != home():
        _adopt(home() / name, path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Models converted from GGUF (regenerable)."""
    return _cached("models")


def _adopt(old: Path, new: Path) -> None:
    """Move what an older medchat kept in the data dir to its new place; left where it is if that fails."""
    if old.exists():
        try:
            os.replace(old, new)
        except OSError:
            pass


def profiles_dir() -> Path:
    return _sub("profiles")


def runs_dir() -> Path:
    """Run scratch (training checkpoints and logs, eval reports): regenerable, so in the cache dir; the
    installed profiles, which are the results, stay in the data dir."""
    return _cached("runs")


def kb_dir() -> Path:
    return _sub("kb")


def history_db() -> Path:
    return home() / "history.db"


def config_file() -> Path:
    path = config_dir() / "config.toml"
    if not path.exists() and config_dir() != home():
        _adopt(home() / "config.toml", path)
    return path


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Write a text file so that readers see the old content or the new, never half of it."""
    atomic_write(path, lambda fh: fh.write(text), mode, text=True)


def atomic_write(path: Path, write, mode: int | None = None, text: bool = False) -> None:
    """`write(file)` fills a temp file beside `path` (binary, or UTF-8 text with `text`), which then
    replaces `path` in one rename. The file is private (0600) unless `mode` says otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        with (os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staging_dir(final: Path):
    """Yield a temp dir beside `final`; on success it replaces `final` atomically.

    The staged files and the folder are fsynced before the swap. Replacing an existing folder is one
    atomic exchange (renameat2 RENAME_EXCHANGE) where the OS has it, so a crash leaves the old folder
    or the new one, never neither. Elsewhere two renames are used and `recover` undoes a crash between
    them. A crash before the swap leaves only a hidden `.staging-*` dir, which listings ignore and
    `sweep_staging` removes.
    """
    import shutil

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    recover(final)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".staging-{final.name}-"))
    try:
        yield tmp
        _fsync_tree(tmp)
        if final.exists():
            if _exchange(tmp, final):
                _remove(tmp)  # tmp now holds the old folder (or file)
            else:
                (tmp / _COMPLETE).touch()  # lets `recover` finish the swap after a crash
                old = final.parent / f".old-{final.name}-{os.getpid()}"
                os.replace(final, old)
                os.replace(tmp, final)
                (final / _COMPLETE).unlink(missing_ok=True)
                _remove(old)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_COMPLETE = ".complete"


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def recover(final: Path) -> None:
    """After a crash between the two renames of a replace: put the new folder (else the old) in place."""
    final = Path(final)
    if final.exists() or not final.parent.exists():
        return
    done = [p for p in final.parent.glob(f".staging-{final.name}-*") if (p / _COMPLETE).exists()]
    olds = sorted(final.parent.glob(f".old-{final.name}-*"))
    if done:
        os.replace(done[0], final)
        (final / _COMPLETE).unlink(missing_ok=True)
    elif olds:
        os.replace(olds[-1], final)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _fsync_tree(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def sweep_staging(parent: Path) -> None:
    """Finish or undo interrupted replaces (see `recover`), then remove what interrupted installs left."""
    import shutil

    parent = Path(parent)
    for p in [*parent.glob(".old-*"), *parent.glob(".staging-*")]:
        recover(parent / p.name.split("-", 1)[1].rsplit("-", 1)[0])
    for p in [*parent.glob(".staging-*"), *parent.glob(".old-*")]:
        shutil.rmtree(p, ignore_errors=True)
