"""The line under the input listing slash-command completions (Tab takes the common part)."""

from __future__ import annotations

from textual.widgets import Static


class CompletionHint(Static):
    def show_options(self, options: list[str]) -> None:
        self.options = options
        shown = [o.rstrip().rsplit(" ", 1)[-1] if " " in o.rstrip() else o.rstrip() for o in options[:12]]
        more = f"  (+{len(options) - 12})" if len(options) > 12 else ""
        self.update("  ".join(shown) + more)
        self.display = bool(options)
