"""One thread budget for the process's torch work (decoding and embedding): at most the cores that
other processes leave free, re-checked while the work runs.

Why: when other processes keep the cores busy, OpenMP workers wait on each other at every barrier.
Measured on a 2-core machine beside a 2-thread CPU-bound process (SmolLM2-135M, 64-token greedy
decode): 2 threads 6.2-6.7 tok/s, 1 thread 10.1-10.7 tok/s; idle, 2 threads 23-27 and 1 thread 13.5.
So a busy machine gets fewer threads and an idle one all of them.

Other processes' load is read from /proc/stat (all CPU time) less this process's own CPU time over
the same interval; where /proc/stat is missing, from the load average.
"""

from __future__ import annotations

import os
import threading
import time

MIN_INTERVAL_S = 0.25  # shorter windows hold too few clock ticks (100 Hz) to count busy cores


def _proc_stat_busy_s() -> float | None:
    """Busy CPU seconds of the whole machine since boot, or None where /proc/stat is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal (guest is inside user)
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class CpuShare:
    """Cores kept busy by other processes, measured between calls."""

    def __init__(self, busy=_proc_stat_busy_s, own=_own_cpu_s, clock=time.monotonic, loadavg=None):
        self._busy, self._own, self._clock = busy, own, clock
        self._loadavg = loadavg or (lambda: os.getloadavg()[0])
        self._last: tuple[float, float, float] | None = None
        self._others: float | None = None
        self._lock = threading.Lock()

    def others(self) -> float:
        with self._lock:
            now, busy, own = self._clock(), self._busy(), self._own()
            if busy is None:  # no /proc/stat: the load average counts this process too, but is all there is
                try:
                    return float(self._loadavg())
                except (AttributeError, OSError):
                    return 0.0
            if self._last is not None and now - self._last[0] >= MIN_INTERVAL_S:
                t0, busy0, own0 = self._last
                self._others = max(0.0, (busy - busy0) - (own - own0)) / (now - t0)
                self._last = (now, busy, own)
            elif self._last is None:
                self._last = (now, busy, own)
            if self._others is None:  # first call: nothing measured yet
                try:
                    return float(self._loadavg())
                except (AttributeError, OSError):
                    return 0.0
            return self._others


    def watch(self, interval: float = MIN_INTERVAL_S) -> None:
        """Keep the measurement fresh from a daemon thread (one /proc/stat read per interval), so the
        first look of a turn sees the last fraction of a second, not the whole pause since the last one."""
        with self._lock:
            if getattr(self, "_watcher", None) is not None:
                return

            def loop():
                while True:
                    time.sleep(interval)
                    self.others()

            self._watcher = threading.Thread(target=loop, name="medchat-cpu-share", daemon=True)
            self._watcher.start()


_SHARE = CpuShare()


def watch() -> None:
    """Start keeping the process-wide measurement fresh (idempotent)."""
    _SHARE.watch()


def budget(limit: int, share: CpuShare | None = None, n_cores: int | None = None) -> int:
    """Threads to use now: the cores other processes leave free, between 1 and `limit`."""
    free = (n_cores or cores()) - (share or _SHARE).others()
    return max(1, min(max(1, limit), int(free + 0.5)))
