"""Side panel listing the knowledge-base passages cited by the last answer (Ctrl+S toggles)."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Static

from medchat.app.commands import relevance


class SourcesPanel(VerticalScroll):
    def compose(self):
        yield Static("no sources yet", id="sources-body", markup=False)

    def show_sources(self, passages) -> None:
        if not passages:
            text = "no sources for the last answer"
        else:
            lines = []
            for i, p in enumerate(passages, 1):
                section = f" — {p.section}" if getattr(p, "section", "") else ""
                snippet = " ".join(p.text.split())[:160]
                lines.append(f"[{i}] {p.title}{section}\n    {p.source} · {relevance(p)}\n    {snippet}")
            text = "\n\n".join(lines)
        self.query_one("#sources-body", Static).update(text)
