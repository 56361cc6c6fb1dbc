"""Adversarial tier: prints how many generated inputs each area received."""

from __future__ import annotations

from tests.adversarial.strategies import CASES  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    if not CASES:
        return
    areas = ", ".join(f"{area} {n}" for area, n in sorted(CASES.items()))
    terminalreporter.write_line(f"adversarial cases: {sum(CASES.values())} ({areas})")
