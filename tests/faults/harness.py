"""Fault-injection harness: run one store operation in a real child process, SIGKILL it at a seeded
random moment, then check the on-disk invariants as a fresh process would find them.

The child (tests/faults/child.py SCENARIO WORKDIR SEED) imports only the store code under test,
prints "ready" once its imports are done, and then repeats its operation until it is killed, so
the kill lands anywhere inside an operation. Each kill is counted in KILLS for the summary line.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
CHILD = Path(__file__).with_name("child.py")


@dataclass
class Tally:
    kills: dict[str, int] = field(default_factory=dict)  # scenario -> kills whose invariants held
    failed: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def survived(self) -> int:
        return sum(self.kills.values())

    def total(self) -> int:
        return self.survived() + sum(self.failed.values())


KILLS = Tally()


def child_env(home: Path) -> dict:
    env = dict(os.environ)
    env["MEDCHAT_HOME"] = str(home)
    env["PYTHONPATH"] = str(ROOT)  # the children import tests.support like the tests
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def start_child(scenario: str, workdir: Path, seed: int, home: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(CHILD), scenario, str(workdir), str(seed)],
                            env=child_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":  # died during imports or setup: show why
        proc.kill()
        _out, err = proc.communicate(timeout=30)
        raise AssertionError(f"child {scenario} did not start: {line!r}\n{err[-3000:]}")
    return proc


def kill_at(proc: subprocess.Popen, delay: float) -> str:
    """SIGKILL the child after `delay` seconds; returns its stderr if it had already died on its own."""
    time.sleep(delay)
    if proc.poll() is not None:
        _out, err = proc.communicate()
        return f"child exited on its own (rc {proc.returncode}) before the kill:\n{err[-3000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return ""


def run_kills(scenario: str, workdir: Path, kills: int, seed: int, window: tuple[float, float],
              check: Callable[[int], None]) -> None:
    """`kills` times: start the child, kill it after a seeded delay in `window`, run `check(i)`.

    Every kill is checked; all failures are gathered and reported together, each with its seed,
    so one run shows how often an invariant breaks and any kill can be replayed.
    """
    rng = random.Random(seed)
    home = workdir / "home"
    failures = []
    started = time.monotonic()
    for i in range(kills):
        child_seed = rng.randrange(1 << 30)
        proc = start_child(scenario, workdir, child_seed, home)
        died = kill_at(proc, rng.uniform(*window))
        try:
            if died:
                raise AssertionError(died)
            check(i)
        except Exception as exc:  # an assertion, or a store that refuses to open or read
            failures.append(f"kill {i} (child seed {child_seed}): {type(exc).__name__}: {exc}")
            KILLS.failed[scenario] = KILLS.failed.get(scenario, 0) + 1
        else:
            KILLS.kills[scenario] = KILLS.kills.get(scenario, 0) + 1
    KILLS.seconds[scenario] = time.monotonic() - started
    assert not failures, f"{len(failures)}/{kills} kills broke an invariant:\n" + "\n".join(failures[:10])


def kill_on_line(argv: list[str], marker: str, home: Path, log: Path, timeout: float = 120) -> list[str]:
    """Run `argv` as a child; SIGKILL it as soon as it prints the line `marker` (a child that holds
    there). Returns the stdout lines seen; raises if the child ends without printing it."""
    seen = []
    with open(log, "a", encoding="utf-8") as err:
        proc = subprocess.Popen(argv, env=child_env(home), stdout=subprocess.PIPE, stderr=err, text=True)
        deadline = time.monotonic() + timeout
        for line in proc.stdout:  # a paused child prints nothing more: the read returns at the marker
            seen.append(line.rstrip("\n"))
            if seen[-1] == marker or time.monotonic() > deadline:
                break
        if seen and seen[-1] == marker:
            os.kill(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    if not seen or seen[-1] != marker:
        raise AssertionError(f"child never reached {marker!r} (rc {proc.returncode}):\n{log.read_text()[-3000:]}")
    return seen


def hidden_leftovers(folder: Path, prefixes=(".staging-", ".old-")) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(prefixes))


def last_intent(log: Path) -> list[str]:
    """The child's last logged operation (words), or [] when it finished (logged 'done') or logged none."""
    if not log.exists():
        return []
    lines = [ln for ln in log.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines or lines[-1] == "done":
        return []
    return lines[-1].split()
