"""Two profiles' answers to the same question, side by side."""

from __future__ import annotations

from textual.containers import Horizontal, Vertical
from textual.widgets import Markdown


class CompareView(Horizontal):
    def __init__(self, answers: dict[str, str]):
        super().__init__()
        self.answers = answers

    def compose(self):
        for name, text in self.answers.items():
            with Vertical(classes="compare-column") as col:
                col.border_title = name
                yield Markdown(text)
