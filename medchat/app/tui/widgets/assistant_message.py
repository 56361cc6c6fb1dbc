"""An assistant reply: streams in as Markdown, then is re-rendered whole when the reply ends."""

from __future__ import annotations

from textual.containers import Vertical
from textual.widgets import Markdown


class AssistantMessage(Vertical):
    def __init__(self, text: str = "", profile: str = "", streaming: bool = False):
        super().__init__(classes="streaming" if streaming else "")
        self.text = text
        self.profile = profile
        self.border_title = profile or "medchat"
        self._stream = None
        self._markdown = Markdown(text)

    def compose(self):
        yield self._markdown

    async def append(self, chunk: str) -> None:
        if self._stream is None:
            self._stream = Markdown.get_stream(self._markdown)
        self.text += chunk
        await self._stream.write(chunk)

    async def finish(self, text: str | None = None, status: str = "complete") -> None:
        """Stop streaming and render the final text in one pass (fences and lists come out right)."""
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        if text is not None:
            self.text = text
        self.remove_class("streaming")
        if status != "complete":
            self.add_class(status)
            self.border_subtitle = status
        await self._markdown.update(self.text)
