"""scripts/install.sh: its checks, sourced one by one, and the quick path of a finished install."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _sh(snippet: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f'source "{SCRIPT}"; {snippet}'], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def _fake_python(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_python_version_check(tmp_path):
    assert _sh(f'python_ok "{sys.executable}"').returncode == 0
    old = _fake_python(tmp_path / "old" / "python", 'exec "%s" -c "import sys; sys.exit(1)"' % sys.executable)
    assert _sh(f'python_ok "{old}"').returncode != 0
    assert _sh(f'python_ok "{tmp_path}/missing"').returncode != 0


def test_broken_or_partial_venv_is_detected(tmp_path):
    assert _sh(f'venv_ok "{tmp_path}/none"').returncode != 0                      # no venv at all
    (tmp_path / "partial" / "bin").mkdir(parents=True)
    assert _sh(f'venv_ok "{tmp_path}/partial"').returncode != 0                   # python missing
    _fake_python(tmp_path / "crash" / "bin" / "python", "exit 127")
    assert _sh(f'venv_ok "{tmp_path}/crash"').returncode != 0                     # not runnable
    _fake_python(tmp_path / "nopip" / "bin" / "python",
                 f'case "$2" in "import pip") exit 1;; esac; exec "{sys.executable}" "$@"')
    assert _sh(f'venv_ok "{tmp_path}/nopip"').returncode != 0                     # pip import fails
    _fake_python(tmp_path / "good" / "bin" / "python", f'exec "{sys.executable}" "$@"')
    assert _sh(f'venv_ok "{tmp_path}/good"').returncode == 0


def test_finished_install_returns_at_once_and_stamp_names_python(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "scripts" / "install.sh")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    _fake_python(repo / ".venv" / "bin" / "python", f'exec "{sys.executable}" "$@"')
    stamp = _sh('stamp_value .venv', cwd=repo).stdout.strip()
    assert f"python={sys.version.split()[0]}" in stamp
    (repo / ".venv" / ".medchat-installed").write_text(stamp + "\n")
    start = time.monotonic()
    run = subprocess.run(["bash", str(repo / "scripts" / "install.sh")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout == "" and run.stderr == ""
    assert time.monotonic() - start < 10
