"""The fault tier's summary line: `faults survived N/N`, per scenario kills and seconds."""

from __future__ import annotations

from harness import KILLS


def pytest_terminal_summary(terminalreporter):
    if not KILLS.total():
        return
    per = ", ".join(f"{name} {KILLS.kills.get(name, 0)}/{KILLS.kills.get(name, 0) + KILLS.failed.get(name, 0)}"
                    f" in {KILLS.seconds.get(name, 0):.0f}s" for name in sorted({*KILLS.kills, *KILLS.failed}))
    terminalreporter.write_line(f"faults survived {KILLS.survived()}/{KILLS.total()} ({per})")
