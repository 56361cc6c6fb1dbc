"""Emergency guidance from safety triage, shown before any model output."""

from __future__ import annotations

from textual.widgets import Static


class TriageNotice(Static):
    def __init__(self, guidance: str, category: str = ""):
        super().__init__(f"⚠ {guidance}", markup=False)
        self.guidance = guidance
        self.border_title = f"urgent: {category}" if category else "urgent"
