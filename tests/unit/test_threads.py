"""The process-wide thread budget: other processes' busy cores come from the machine's CPU time less
this process's own; torch work gets what they leave free, at least one thread."""

from __future__ import annotations

from medchat.core import threads


class Clock:
    def __init__(self):
        self.t, self.busy, self.own = 100.0, 5000.0, 10.0

    def advance(self, seconds: float, others: float, mine: float):
        """`seconds` pass with `others` cores busy elsewhere and `mine` busy here."""
        self.t += seconds
        self.busy += seconds * (others + mine)
        self.own += seconds * mine


def share(clock: Clock, loadavg: float = 0.0) -> threads.CpuShare:
    return threads.CpuShare(busy=lambda: clock.busy, own=lambda: clock.own, clock=lambda: clock.t,
                            loadavg=lambda: loadavg)


def test_busy_cores_elsewhere_exclude_this_process():
    c = Clock()
    s = share(c)
    s.others()
    c.advance(2.0, others=1.5, mine=2.0)
    assert abs(s.others() - 1.5) < 1e-9


def test_budget_gives_all_threads_when_idle_and_one_when_the_machine_is_busy():
    c = Clock()
    s = share(c)
    s.others()
    c.advance(1.0, others=0.0, mine=2.0)  # our own decoding does not count against us
    assert threads.budget(2, s, n_cores=2) == 2
    c.advance(1.0, others=1.9, mine=1.0)
    assert threads.budget(2, s, n_cores=2) == 1
    c.advance(1.0, others=5.0, mine=1.0)  # never below one thread
    assert threads.budget(2, s, n_cores=2) == 1
    c.advance(1.0, others=0.2, mine=1.0)  # and back up when the other process stops
    assert threads.budget(2, s, n_cores=2) == 2


def test_budget_never_exceeds_the_limit():
    c = Clock()
    s = share(c)
    s.others()
    c.advance(1.0, others=0.0, mine=0.0)
    assert threads.budget(3, s, n_cores=16) == 3


def test_a_window_too_short_to_measure_keeps_the_last_figure():
    c = Clock()
    s = share(c)
    s.others()
    c.advance(1.0, others=1.0, mine=0.0)
    assert abs(s.others() - 1.0) < 1e-9
    c.advance(threads.MIN_INTERVAL_S / 10, others=2.0, mine=0.0)
    assert abs(s.others() - 1.0) < 1e-9  # the short window is not read yet ...
    c.advance(1.0, others=2.0, mine=0.0)
    assert s.others() > 1.9  # ... but counts once the window is long enough


def test_first_look_and_machines_without_proc_stat_use_the_load_average():
    c = Clock()
    assert share(c, loadavg=1.7).others() == 1.7  # nothing measured yet
    s = threads.CpuShare(busy=lambda: None, own=lambda: 0.0, clock=lambda: c.t, loadavg=lambda: 3.0)
    assert threads.budget(2, s, n_cores=2) == 1


def test_proc_stat_reader_counts_busy_seconds_here():
    got = threads._proc_stat_busy_s()
    assert got is None or got > 0


def test_watch_keeps_sampling_in_the_background_with_one_thread():
    import threading
    import time

    looks = []
    s = threads.CpuShare(busy=lambda: looks.append(1) or 0.0, own=lambda: 0.0, clock=time.monotonic,
                         loadavg=lambda: 0.0)
    before = threading.active_count()
    s.watch(interval=0.01)
    s.watch(interval=0.01)  # idempotent: still one sampler
    deadline = time.monotonic() + 5
    while len(looks) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(looks) >= 3 and threading.active_count() == before + 1
