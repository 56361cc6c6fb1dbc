"""The standing one-line safety disclaimer."""

from __future__ import annotations

from textual.widgets import Static


class DisclaimerBar(Static):
    def __init__(self, text: str, **kwargs):
        super().__init__(text, markup=False, **kwargs)
