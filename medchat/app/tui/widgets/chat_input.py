"""The message input: multi-line TextArea where Enter sends, Shift+Enter/Ctrl+J add a line,
Up/Down at the edges walk the input history and Tab completes slash commands."""

from __future__ import annotations

import os

from textual import events
from textual.message import Message
from textual.widgets import TextArea


def _common_prefix(options: list[str]) -> str:
    return os.path.commonprefix(options) if options else ""


class ChatInput(TextArea):
    class Submitted(Message):
        def __init__(self, text: str):
            super().__init__()
            self.text = text

    class CompletionsChanged(Message):
        def __init__(self, options: list[str]):
            super().__init__()
            self.options = options

    def __init__(self, completer=None, **kwargs):
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)
        self.completer = completer  # text -> list of whole-line completions
        self.input_history: list[str] = []
        self._history_pos: int | None = None  # index into history while browsing it
        self._draft = ""

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.submit()
            return
        if event.key in ("shift+enter", "ctrl+j"):
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        if event.key == "tab" and self.text.startswith("/"):
            event.stop()
            event.prevent_default()
            self.complete()
            return
        await super()._on_key(event)

    def submit(self) -> None:
        text = self.text.strip()
        if not text:
            return
        if not self.input_history or self.input_history[-1] != text:
            self.input_history.append(text)
        self._history_pos = None
        self.clear()
        self.post_message(self.Submitted(text))

    def complete(self) -> None:
        options = self.completer(self.text) if self.completer else []
        common = _common_prefix(options)
        if len(common) > len(self.text):
            self.load_text(common)
            self.move_cursor(self.document.end)
        self.post_message(self.CompletionsChanged(options))

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if self.completer is not None:
            text = self.text
            self.post_message(self.CompletionsChanged(self.completer(text) if text.startswith("/") else []))

    # --- input history: Up on the first line goes back, Down on the last line goes forward ----
    def action_cursor_up(self, select: bool = False) -> None:
        if select or self.cursor_location[0] > 0 or not self.input_history:
            return super().action_cursor_up(select)
        if self._history_pos is None:
            self._draft, self._history_pos = self.text, len(self.input_history)
        if self._history_pos > 0:
            self._history_pos -= 1
            self._show(self.input_history[self._history_pos])

    def action_cursor_down(self, select: bool = False) -> None:
        last_row = self.document.line_count - 1
        if select or self._history_pos is None or self.cursor_location[0] < last_row:
            return super().action_cursor_down(select)
        self._history_pos += 1
        if self._history_pos >= len(self.input_history):
            self._history_pos = None
            self._show(self._draft)
        else:
            self._show(self.input_history[self._history_pos])

    def _show(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)

    def restore(self, text: str) -> None:
        """Put a prompt back (a failed reply) unless the user already typed something new."""
        if not self.text.strip():
            self._show(text)
