"""Adversarial tier: prints how many generated inputs each area received."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from strategies import CASES  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    if not CASES:
        return
    areas = ", ".join(f"{area} {n}" for area, n in sorted(CASES.items()))
    terminalreporter.write_line(f"adversarial cases: {sum(CASES.values())} ({areas})")
