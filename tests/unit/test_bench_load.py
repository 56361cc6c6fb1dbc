"""decode.under_load_* and start.first_answer_*: the competing process is always stopped, the ratio comes
from the two medians, and the first-answer child is built, timed and parsed as documented.

Fake decode runs and fake "pythons" stand in for the model; no speed or duration is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medchat.app import bench_load as bl

ROOT = Path(__file__).resolve().parents[2]


def gone(pid: int) -> bool:
    """The process no longer runs (reaped, or a zombie waiting for a parent that is not us)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_the_competing_process_runs_one_busy_thread_per_core_and_is_stopped():
    with bl.competing_load(3) as proc:
        assert proc.poll() is None
        status = Path(f"/proc/{proc.pid}/status").read_text()
        threads = int(next(ln for ln in status.splitlines() if ln.startswith("Threads:")).split()[1])
        assert threads >= 4  # the main thread and three spinning ones
    assert proc.returncode is not None and gone(proc.pid)


def test_the_competing_process_is_stopped_when_the_block_raises():
    with pytest.raises(KeyboardInterrupt):
        with bl.competing_load(1) as proc:
            raise KeyboardInterrupt  # Ctrl-C during the loaded run
    assert proc.returncode is not None and gone(proc.pid)


def test_under_load_alternates_idle_and_loaded_runs_and_divides_the_medians(hogs):
    idle, loaded = iter([99.0, 10.0, 30.0, 20.0]), iter([5.0, 9.0, 7.0])  # 99: the warm-up, in no figure
    same = iter([4.0, 2.0, 3.0])
    seen = []

    def run_once():
        busy = bool(hogs) and hogs[-1].poll() is None
        kind = "idle" if not busy else "own" if hogs[-1].own_session else "same"
        seen.append(kind)
        return next({"idle": idle, "own": loaded, "same": same}[kind])

    got = bl.under_load(run_once, repeats=3, threads=1)
    assert seen == ["idle"] + ["idle", "own", "same"] * 3
    assert got["under_load_idle_tok_s"] == 20.0 and got["under_load_tok_s"] == 7.0
    assert got["under_load_ratio"] == 0.35 and got["under_load_threads"] == 1
    assert got["under_load_same_session_tok_s"] == 3.0 and got["under_load_same_session_ratio"] == 0.15
    assert len(hogs) == 6 and all(p.returncode is not None and gone(p.pid) for p in hogs)
    assert isinstance(got["under_load_load_avg"], float)


def test_no_competing_process_is_left_when_the_loaded_decode_raises(hogs):
    calls = []

    def run_once():
        calls.append(1)
        if hogs:
            raise RuntimeError("decode failed")
        return 10.0

    with pytest.raises(RuntimeError, match="decode failed"):
        bl.under_load(run_once, repeats=2, threads=1)
    assert len(calls) == 3 and len(hogs) == 1
    assert hogs[0].returncode is not None and gone(hogs[0].pid)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_competing_process_exits_by_itself_when_the_bench_is_killed(tmp_path):
    # a bench process that starts the load and dies at once, without running any `finally`
    code = ("import os, sys; sys.path.insert(0, %r); from medchat.app import bench_load as bl\n"
            "cm = bl.competing_load(1); proc = cm.__enter__(); print(proc.pid, flush=True); os._exit(0)") % str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 60  # a liveness wait, not a timing assertion
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not gone(pid):
        os.kill(pid, 9)
        pytest.fail("the competing load outlived the bench")


def test_load_figures_without_an_idle_rate():
    got = bl.load_figures([0.0], [0.0], [0.0], threads=2, load_avg=None)
    assert got["under_load_ratio"] is None and got["under_load_load_avg"] is None


# ------------------------------------------------------------------------------------------ first answer
def test_first_answer_command_is_a_plain_ask_with_the_default_kb():
    cmd = bl.first_answer_command("/py", "Why?", base=None)
    assert cmd == ["/py", "-m", "medchat", "ask", "Why?", "--json"]
    assert "--no-kb" not in cmd and "--kb" not in cmd
    assert bl.first_answer_command("/py", "Why?", base="/m", max_new_tokens=4)[-4:] == [
        "--base", "/m", "--max-new-tokens", "4"]


FAKE_ASK = """#!{exe}
import json, os, sys
with open({log!r}, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "home": os.environ["MEDCHAT_HOME"],
                        "models": os.path.realpath(os.path.join(os.environ["MEDCHAT_HOME"], "models"))}}) + "\\n")
if {fail!r}:
    sys.stderr.write("Traceback...\\nRuntimeError: no model\\n")
    sys.exit(2)
sys.stderr.write("medchat: loading\\n")
print("some chatter")
print(json.dumps({{"answer": "Fever and cough.", "profile": "doctor", "tokens": {{"prompt": 9, "completion": 7}}}}))
"""


def fake_python(tmp_path, fail=False):
    log = tmp_path / "ask.log"
    path = tmp_path / "python-ask"
    path.write_text(FAKE_ASK.format(exe=sys.executable, log=str(log), fail=fail), encoding="utf-8")
    path.chmod(0o755)
    return str(path), log


def test_first_answer_runs_each_ask_in_a_fresh_home_sharing_the_converted_models(tmp_path, monkeypatch):
    monkeypatch.setattr(bl, "kb_note", lambda: None)
    models = tmp_path / "models"
    models.mkdir()
    py, log = fake_python(tmp_path)
    got = bl.first_answer("/m", models, tmp_path, repeats=2, python=py)
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(runs) == 2 and runs[0]["home"] != runs[1]["home"]
    assert all(r["models"] == str(models.resolve()) for r in runs)
    assert all(sorted(os.listdir(r["home"])) == ["models"] for r in runs)  # nothing else carried over
    assert runs[0]["argv"] == ["-m", "medchat", "ask", bl.FIRST_QUESTION, "--json", "--base", "/m"]
    assert set(got) == {"first_answer_s", "first_answer_tokens", "first_answer_profile"}
    assert got["first_answer_tokens"] == 7 and got["first_answer_profile"] == "doctor"
    assert isinstance(got["first_answer_s"], float)


def test_first_answer_notes_an_index_built_during_the_ask(tmp_path, monkeypatch):
    monkeypatch.setattr(bl, "kb_note", lambda: "built it")
    py, _ = fake_python(tmp_path)
    got = bl.first_answer(None, tmp_path, tmp_path, repeats=1, python=py)
    assert got["first_answer_note"] == "built it"


def test_kb_note_follows_whether_the_shipped_index_matches(monkeypatch):
    from kb import shipped

    monkeypatch.setattr(shipped, "usable", lambda data_dir: None)
    assert "not shipped" in bl.kb_note()
    monkeypatch.setattr(shipped, "usable", lambda data_dir: {"format": 1})
    assert bl.kb_note() is None


def test_a_failing_first_ask_is_reported_not_raised(tmp_path, monkeypatch):
    monkeypatch.setattr(bl, "kb_note", lambda: None)
    py, _ = fake_python(tmp_path, fail=True)
    got = bl.first_answer(None, tmp_path, tmp_path, repeats=3, python=py)
    assert got["first_answer_s"] is None
    assert "exit 2" in got["first_answer_note"] and "RuntimeError: no model" in got["first_answer_note"]



@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_competing_process_runs_in_its_own_session_unless_told_otherwise():
    def session(pid: int) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])

    with bl.competing_load(1) as own:
        assert session(own.pid) == own.pid != session(os.getpid())
    with bl.competing_load(1, own_session=False) as same:
        assert session(same.pid) == session(os.getpid())
