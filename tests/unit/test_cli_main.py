"""The `medchat` entry point: process-wide settings made before any command runs, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import sys
from medchat.cli import main
assert 'huggingface_hub' not in sys.modules  # nothing hub-related loads before main runs
try:
    main(['--version'])
except SystemExit:
    pass
import huggingface_hub.constants as c
print(c.HF_HUB_OFFLINE)
"""


@pytest.mark.parametrize("value, offline", [(None, "True"), ("", "True"), ("0", "False"), ("1", "True")])
def test_hub_is_offline_from_process_start_unless_the_user_says_otherwise(value, offline, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    if value is not None:
        env["HF_HUB_OFFLINE"] = value
    env.update(PYTHONPATH=str(ROOT), MEDCHAT_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == offline
