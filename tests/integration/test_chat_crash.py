"""kill -9 in the middle of a reply keeps what had streamed (a 'partial' row): the history database
stays consistent and every earlier message is intact. The child is the real plain REPL reading stdin, with a slow
FakeEngine in place of the model."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

TESTS = Path(__file__).parents[1]
ROOT = TESTS.parent

CHILD = """
import sys
sys.path.insert(0, {root!r})  # a child interpreter: the repository, as pytest has it
from tests.support.fake_engine import FakeEngine
from medchat.app.history.store import HistoryStore
from medchat.core.profiles import ProfileStore
from medchat.app.repl import run_repl
from medchat.app.session import ChatSession

def reply(profile, question):
    if question.startswith("first"):
        return "a short complete answer."
    return " ".join(f"w{{i}}" for i in range(2000))  # the slow one that gets killed

engine = FakeEngine(ProfileStore(), delay=0.02, reply=reply)
session = ChatSession(engine, history=HistoryStore(), kb=None, triage=lambda t: None)
raise SystemExit(run_repl(session, tty=False))
"""


class Output:
    """Collects a child's stdout in a thread so the test can wait for text without blocking."""

    def __init__(self, stream):
        self.text = ""
        self._stream = stream
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        while chunk := os.read(self._stream.fileno(), 4096):
            self.text += chunk.decode("utf-8", "replace")

    def wait_for(self, needle: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            assert time.monotonic() < deadline, f"child never printed {needle!r}; got {self.text[-300:]!r}"
            time.sleep(0.02)


def test_sigkill_mid_reply_keeps_history_consistent(medchat_home):
    script = CHILD.format(root=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             env={**os.environ, "MEDCHAT_HOME": str(medchat_home)})
    out = Output(child.stdout)
    try:
        child.stdin.write(b"first question\n")
        child.stdin.flush()
        out.wait_for("a short complete answer.\n")
        child.stdin.write(b"second question\n")
        child.stdin.flush()
        out.wait_for("w20 ")  # the second reply is streaming now
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()

    db = medchat_home / "history.db"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = con.execute("SELECT role, content, status FROM messages ORDER BY id").fetchall()
    assert rows[:3] == [("user", "first question", "complete"),
                        ("assistant", "a short complete answer.", "complete"),
                        ("user", "second question", "complete")]
    # the in-flight reply is kept as it streamed, marked partial (never 'complete')
    assert len(rows) == 4 and rows[3][0] == "assistant" and rows[3][2] == "partial"
    assert rows[3][1].startswith("w0 w1 w2 w3 w4 w5")

    from medchat.app.history.store import HistoryStore

    store = HistoryStore()  # reopens cleanly after the crash
    conv = store.last_conversation()
    assert [m["content"] for m in store.messages(conv["id"])][:2] == ["first question", "a short complete answer."]
