"""The heap guard trims only when resident memory outgrows the settled working set."""

from trainer.memory import SETTLE_STEPS, HeapGuard, resident_bytes

GB = 1 << 30


def _run(sizes_gb, growth=1.25):
    sizes = iter(int(s * GB) for s in sizes_gb)
    trims = []
    guard = HeapGuard(growth=growth, trim=lambda pad: trims.append(pad), rss=lambda: next(sizes))
    at = []
    for i in range(len(sizes_gb)):
        before = guard.trims
        guard.after_step()
        if guard.trims > before:
            at.append(i)
    assert trims == [0] * len(at)  # malloc_trim(0): no padding kept at the top of the heap
    return guard, at


def test_the_first_steps_set_the_level_and_growth_past_a_quarter_trims():
    assert SETTLE_STEPS == 3
    # the doctor recipe's shape: 8, 10, 12 GB while it settles, then slow growth
    guard, at = _run([8, 10, 12, 12.1, 14.9, 15.2, 12.8, 15.9, 16.1])
    assert at == [5, 8]  # 15.2 > 1.25 * 12; after it, 12.8 is the new level (limit 16)
    assert guard.level == int(12.8 * GB)


def test_a_steady_run_is_never_trimmed():
    guard, at = _run([8, 10, 12] + [12.0 + 0.01 * i for i in range(100)])
    assert at == [] and guard.trims == 0


def test_the_level_never_falls_after_a_trim():
    guard, at = _run([12, 12, 12, 16, 9, 14.9, 15.1])
    assert at == [3, 6]  # 9 GB right after the trim does not lower the limit (15 GB)
    assert guard.level == 12 * GB


def test_without_malloc_trim_it_does_nothing():
    guard = HeapGuard(rss=lambda: (_ for _ in ()).throw(AssertionError("read")))
    guard._trim = None  # another C library
    guard.after_step()
    assert guard.trims == 0


def test_resident_bytes_sees_memory_being_touched():
    before = resident_bytes()
    block = bytearray(256 << 20)  # zero-filled: every page is touched
    assert resident_bytes() - before > 200 << 20
    del block
