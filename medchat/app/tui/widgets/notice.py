"""A one-off line in the conversation pane: command output, hints and errors."""

from __future__ import annotations

from textual.widgets import Static


class Notice(Static):
    def __init__(self, content, kind: str = "info"):
        # plain strings are shown as typed (no markup), rich renderables (tables) as they are
        super().__init__(content, markup=False, classes=kind)
        self.kind = kind
