"""The layering contracts in pyproject.toml ([tool.importlinter]) hold: medchat.app above kb | trainer above
medchat.core, the rooms independent, the seam importing nothing above it, the training stages independent
and above their shared blocks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> str:
    found = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(found).exists():
        pytest.skip("import-linter is not installed (it comes with the test extras: ./test installs it)")
    return found


def test_import_contracts_are_kept():
    out = subprocess.run([_lint_imports()], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("where, line, contract", [
    ("kb", "import medchat.app.session", "layers: medchat.app above kb | trainer above medchat.core"),
    ("trainer", "import kb.store", "kb and trainer are independent rooms"),
    ("medchat/core", "import trainer.runs", "the seam (medchat.core) imports no room and no application module"),
    ("trainer/stages/dpo", "import trainer.stages.rm.trainer", "training stages import no other stage"),
    ("trainer/stages/causal", "import trainer.stages.sft", "shared stage blocks import no stage"),
])
def test_a_forbidden_import_is_caught(where, line, contract):
    """The contracts can fail: a room importing the application, a room importing the other room, the seam
    importing a room, a stage importing another, a shared stage block importing a stage each break the
    contract named."""
    bad = ROOT / where / "_contract_probe.py"
    bad.write_text(f"{line}  # noqa: F401\n", encoding="utf-8")
    try:
        out = subprocess.run([_lint_imports()], cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        bad.unlink()
    assert out.returncode != 0 and "BROKEN" in out.stdout
    assert f"{contract} BROKEN" in out.stdout, out.stdout[-3000:]
