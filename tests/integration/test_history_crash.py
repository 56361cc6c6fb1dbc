"""A writer killed with SIGKILL mid-stream loses at most the reply it was writing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medchat.app.history import HistoryStore

ROOT = Path(__file__).resolve().parents[2]

# The child mimics a chat turn: commit the user's message, then stream a partial reply token by token.
CHILD = r"""
import sys
from medchat.app.history.store import HistoryStore

store = HistoryStore(sys.argv[1])
cid = store.new_conversation()
store.add_message(cid, "user", "crash-test question " + sys.argv[2])
mid = store.add_message(cid, "assistant", "", status="partial")
text = ""
i = 0
while True:
    i += 1
    text += f"tok{i} "
    store.update_message(mid, content=text, status="partial", timings={"tokens": i})
    if i == 30:
        print(cid, mid, flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_write_keeps_database_consistent(tmp_path):
    db = tmp_path / "history.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rng = random.Random(1234)
    turns = []
    for round_no in range(3):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(round_no)], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = child.stdout.readline()
            assert line, f"child failed before streaming: {child.stderr.read() if child.poll() is not None else ''}"
            time.sleep(rng.uniform(0.0, 0.15))  # land the kill at a different point of the write loop
            os.kill(child.pid, signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)
            child.stdout.close()
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        cid, mid = (int(x) for x in line.split())
        turns.append((round_no, cid, mid))

        with HistoryStore(db) as store:  # reopening recovers the WAL
            assert store.integrity_ok()
            for done_round, done_cid, done_mid in turns:
                user, reply = store.messages(done_cid)
                assert (user["role"], user["content"]) == ("user", f"crash-test question {done_round}")
                assert reply["id"] == done_mid and reply["status"] == "partial"
                tokens = reply["content"].split()
                # every committed update is whole: the text is tok1..tokN and its timings agree with it
                assert tokens == [f"tok{i}" for i in range(1, len(tokens) + 1)]
                assert len(tokens) >= 30 and reply["timings"] == {"tokens": len(tokens)}
            user_id = store.messages(cid)[0]["id"]
            assert [h["message_id"] for h in store.search(f'"crash-test question {round_no}"')] == [user_id]
