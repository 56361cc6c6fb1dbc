"""'From the knowledge base': the retrieved sentences closest to the question, quoted verbatim,
shown under an assistant reply (picked by the embedder, never written by the model)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class KeyFacts(Static):
    def __init__(self, facts: list):
        self.facts = list(facts)
        text = Text()
        for i, f in enumerate(self.facts):
            if i:
                text.append("\n")
            text.append(f"[{f.n}] ", style="bold")
            text.append(f"“{f.sentence}”")
            text.append(f"  {f.cite()}", style="dim")
        super().__init__(text)
        self.border_title = "From the knowledge base"
