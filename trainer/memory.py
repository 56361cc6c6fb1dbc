"""Keep a long training run's resident memory near its working set.

glibc's malloc keeps freed blocks for reuse. When batch shapes change from step to step (rows of
different lengths), new blocks are carved beside the freed ones and the heap only grows: the doctor
recipe on CPU grew from 12 GB to 24 GB by step ~190 and was OOM-killed on a 24 GB machine. Measured
on 12 steps of that recipe (idle 2-core CPU): returning free pages after every step (`malloc_trim`)
cost 28% of the speed, as each step faults its activations in again; an mmap threshold of 1 MiB cost
half. So the guard trims only when the process has grown by a quarter past the size it settles at:
a few trims in a run, each costing about one step's page faults. The bigger cure is a smaller
micro-batch (the doctor recipe: batch 1 x grad_accum 4, 7.3 GB at its peak over the full run, 4 trims). At
that size the heap settles without the guard too (80 steps unguarded: 6.9 GB at most); the guard is for
larger CPU batches, where it grows in jumps.
"""

from __future__ import annotations

import ctypes
import os

GROWTH = 1.25  # trim once resident memory passes this multiple of the settled working set
SETTLE_STEPS = 3  # the first steps still grow to the working set (the doctor recipe: 8 GB, 10, then 12)


def resident_bytes() -> int:
    """This process's resident set size (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _malloc_trim():
    """glibc's malloc_trim, or None on another C library (macOS, musl): the guard does nothing there."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class HeapGuard:
    """Call `after_step()` after every optimizer step (and after an evaluation). The working-set level
    is the largest resident size seen on the first SETTLE_STEPS steps and on each step that follows a
    trim (when the freed pages are faulted in again); a step that ends above `growth` times it trims."""

    def __init__(self, growth: float = GROWTH, trim=None, rss=resident_bytes):
        self.growth = growth
        self._trim = trim if trim is not None else _malloc_trim()
        self._rss = rss
        self.level = 0
        self.trims = 0
        self._settling = SETTLE_STEPS

    def after_step(self) -> None:
        if self._trim is None:
            return
        rss = self._rss()
        if self._settling:
            self.level, self._settling = max(self.level, rss), self._settling - 1
        elif rss > self.growth * self.level:
            self._trim(0)
            self.trims += 1
            self._settling = 1
