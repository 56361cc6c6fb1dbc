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
from medchat.app.cli import main
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


def test_exit_codes_are_documented_and_kept_apart(capsys, monkeypatch):
    from medchat.app.cli import main

    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert "exit codes:" in shown and "130" in shown and "usage error" in shown
    assert main(["history", "list", "--limit", "zero"]) == 2  # argparse: malformed value
    assert main(["history", "show", "999"]) == 1  # well-formed, but no such conversation
    assert "no conversation with id 999" in capsys.readouterr().err

    from medchat.app.cli import history_cmd

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(history_cmd, "cmd_list", interrupted)
    assert main(["history", "list"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_usage_errors_raised_by_handlers_exit_2(capsys):
    from medchat.app.cli import main
    from medchat.core.errors import UsageError, UserError

    assert issubclass(UsageError, UserError) and UsageError("x").code == 2 and UserError("x").code == 1
    assert main(["train", "--name", "x", "--set", "lora.r"]) == 2
    assert "--set expects KEY=VALUE" in capsys.readouterr().err


def test_busy_database_in_search_is_reported_not_hidden(monkeypatch, capsys):
    import sqlite3

    from medchat.app.cli import main
    from medchat.app.history import HistoryStore

    def locked(self, sql, params=()):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(HistoryStore, "_read", locked)
    assert main(["history", "search", "fever"]) == 1
    err = capsys.readouterr().err
    assert "busy" in err and "database is locked" in err and "again" in err and "No messages" not in err
