"""`medchat bench` figures of issue 14 that involve other processes: decode under a competing CPU load
(`decode.under_load_*`) and the first answer of a new user (`start.first_answer_*`).

Under load: idle and loaded decode runs alternate (per repeat: idle, then two loaded runs, after one
warm-up run) so a drift in the machine's load hits all alike. For each loaded run a child process spins
one thread per usable core on `hashlib.sha256` of a 1 MiB block (which releases the GIL, so the threads
really use every core); it is started (and seen busy) before the run and killed right after it, also
when the run raises or on Ctrl-C, and it exits by itself if the bench dies without killing it.

The two loaded runs differ in where the busy process lives. `under_load_*`: in a session of its own, as
another program is (another terminal, a service, a build); Linux's scheduler then shares the CPU between
the two programs, whatever their thread counts. `under_load_same_session_*`: in the bench's own session,
where the scheduler shares it between threads, so the 2 busy threads get 2/3 of the machine against one
decoding thread (a job started from the same shell).

First answer: `python -m medchat ask QUESTION --json` in a fresh MEDCHAT_HOME whose `models` folder is
a symlink to the converted-model cache, so the figure holds no GGUF conversion but everything else a
new user's first question pays: imports, model load, opening (installing) the default KB, the
embedder, triage, the shipped profiles' first-run install, and the answer with the default profile
and settings (KB on). Timed from process start until the answer's JSON line is read from the child's
stdout.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from medchat.core.threads import cores

FIRST_QUESTION = "What are the common symptoms of influenza, and when should I see a doctor?"

HOG_SCRIPT = r"""
import hashlib, os, sys, threading, time
n, parent = int(sys.argv[1]), int(sys.argv[2])
block = os.urandom(1 << 20)
def spin():
    while True:
        hashlib.sha256(block).digest()  # releases the GIL: n threads keep n cores busy
for _ in range(n):
    threading.Thread(target=spin, daemon=True).start()
print("ready", flush=True)
while os.getppid() == parent:  # the bench died without killing us (SIGKILL): do not linger
    time.sleep(0.5)
os._exit(0)
"""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # unkillable (D state): nothing more we can do from here
        pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@contextmanager
def competing_load(threads: int | None = None, own_session: bool = True):
    """A CPU-bound child process with `threads` busy threads (default: one per core) while the block runs,
    in a session of its own unless own_session is False."""
    n = threads or cores()
    proc = subprocess.Popen([sys.executable, "-c", HOG_SCRIPT, str(n), str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=own_session)
    try:
        if proc.stdout.readline().strip() != "ready":  # measure only once the load is really on
            raise RuntimeError(f"the competing load process did not start (exit {proc.poll()})")
        yield proc
    finally:
        _stop(proc)


def engine_rate(engine, prompt: list[dict], tokens: int):
    """One greedy decode of `prompt` through the engine, cold (no prefix reuse) -> tok/s; as `decode`."""
    from medchat.core.engine.protocol import collect
    from medchat.core.settings import GenerationSettings

    greedy = GenerationSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=tokens)

    def once() -> float:
        engine.reset()
        t0 = time.perf_counter()
        _, stats = collect(engine.stream(prompt, greedy))
        return stats.completion_tokens / (time.perf_counter() - t0)

    return once


def under_load(run_once, repeats: int, threads: int | None = None) -> dict:
    """`decode.under_load_*` from `run_once() -> tok/s`: median loaded ÷ median idle, same run."""
    n = threads or cores()
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    run_once()  # warm-up: the first decode after a load pays one-off costs that are no part of either figure
    idle, loaded, same = [], [], []
    for _ in range(max(1, repeats)):
        idle.append(run_once())
        with competing_load(n):
            loaded.append(run_once())
        with competing_load(n, own_session=False):
            same.append(run_once())
    return load_figures(idle, loaded, same, n, load_avg)


def load_figures(idle: list[float], loaded: list[float], same: list[float], threads: int,
                 load_avg: float | None) -> dict:
    i, w, s = statistics.median(idle), statistics.median(loaded), statistics.median(same)
    return {"under_load_ratio": round(w / i, 2) if i > 0 else None, "under_load_tok_s": round(w, 1),
            "under_load_idle_tok_s": round(i, 1), "under_load_threads": threads,
            "under_load_same_session_ratio": round(s / i, 2) if i > 0 else None,
            "under_load_same_session_tok_s": round(s, 1),
            "under_load_load_avg": round(load_avg, 2) if load_avg is not None else None}


# ------------------------------------------------------------------------------------------ first answer
def first_answer_command(python: str, question: str = FIRST_QUESTION, base: str | None = None,
                         max_new_tokens: int | None = None) -> list[str]:
    """The new user's command: default profile, settings and KB; --json only so the answer is one line."""
    cmd = [python, "-m", "medchat", "ask", question, "--json"]
    if base:
        cmd += ["--base", base]
    if max_new_tokens:
        cmd += ["--max-new-tokens", str(max_new_tokens)]
    return cmd


def fresh_home(root: Path, models: Path) -> Path:
    home = Path(tempfile.mkdtemp(prefix="first-answer-home-", dir=root))
    os.symlink(models, home / "models")  # the converted model is reused: no GGUF conversion in the figure
    return home


def kb_note() -> str | None:
    """Why the first ask also builds the default KB index, or None when the shipped index is used."""
    from kb import shipped
    from kb.knowledge import DEFAULT_DATA

    if shipped.usable(DEFAULT_DATA) is None:
        return ("the default KB index is not shipped (or does not match the bundled documents or the embedder): "
                "the first ask built it, inside first_answer_s")
    return None


def ask_once(cmd: list[str], env: dict, timeout: float = 1800) -> tuple[float, dict]:
    """(seconds from process start until the answer's JSON line arrived, that JSON) or RuntimeError."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as err:  # a file, not a pipe: a chatty child never blocks
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            elapsed, answer = None, None
            for line in proc.stdout:
                try:
                    got = json.loads(line)
                except ValueError:
                    continue
                if isinstance(got, dict) and "answer" in got:
                    elapsed, answer = time.perf_counter() - t0, got
                    break
            proc.stdout.read()  # drain what follows, then let it exit
            rc = proc.wait()
        finally:
            timer.cancel()
            _stop(proc)
        if rc != 0 or answer is None:
            err.seek(0)
            tail = [ln for ln in err.read().strip().splitlines() if ln.strip()][-1:] or ["no answer on stdout"]
            raise RuntimeError(f"`medchat ask` exit {rc}: {tail[0][:200]}")
    return elapsed, answer


def first_answer(base: str | None, models: Path, root: Path, repeats: int, python: str | None = None,
                 max_new_tokens: int | None = None) -> dict:
    """`start.first_answer_*`: median over `repeats` fresh homes; a failure is reported, not raised."""
    note = kb_note()
    times, tokens, profile = [], [], None
    for _ in range(max(1, repeats)):
        env = dict(os.environ, MEDCHAT_HOME=str(fresh_home(root, models)))
        cmd = first_answer_command(python or sys.executable, FIRST_QUESTION, base, max_new_tokens)
        try:
            seconds, answer = ask_once(cmd, env)
        except RuntimeError as e:
            return {"first_answer_s": None, "first_answer_note": f"first answer failed: {e}"}
        times.append(seconds)
        tokens.append(int(answer.get("tokens", {}).get("completion", 0)))
        profile = answer.get("profile")
    out = {"first_answer_s": round(statistics.median(times), 2), "first_answer_tokens": int(statistics.median(tokens)),
           "first_answer_profile": profile}
    if note:
        out["first_answer_note"] = note
    return out
