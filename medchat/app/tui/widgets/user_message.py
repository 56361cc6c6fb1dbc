"""A user's message in the conversation pane."""

from __future__ import annotations

from textual.widgets import Static


class UserMessage(Static):
    def __init__(self, text: str, pending: bool = False):
        super().__init__(text, markup=False, classes="pending" if pending else "")
        self.text = text
        self.border_title = "you"

    def mark_sent(self) -> None:
        self.remove_class("pending")
