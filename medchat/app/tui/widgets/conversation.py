"""The conversation pane: follows the newest output only while the user is at the bottom."""

from __future__ import annotations

from textual.containers import VerticalScroll

from medchat.app.tui.widgets.assistant_message import AssistantMessage
from medchat.app.tui.widgets.user_message import UserMessage


class Conversation(VerticalScroll):
    def on_mount(self) -> None:
        self.anchor()  # Textual releases the anchor when the user scrolls up, restores it at the bottom

    async def add(self, widget) -> None:
        await self.mount(widget)

    async def reset(self, messages: list[dict] = (), profile: str = "") -> None:
        """Show `messages` (the session's user/assistant turns) from scratch."""
        await self.remove_children()
        widgets = [UserMessage(m["content"]) if m["role"] == "user" else AssistantMessage(m["content"], profile)
                   for m in messages]
        for m, w in zip(messages, widgets):
            if m.get("status") == "partial":  # cut off by a crash or a kill: say so
                w.add_class("cancelled")
                w.border_subtitle = "interrupted"
        if widgets:
            await self.mount_all(widgets)
        self.scroll_end(animate=False)

    async def drop_after_last_user(self) -> None:
        """Remove what follows the last user message (the reply `/retry` replaces)."""
        users = list(self.query(UserMessage))
        if not users:
            return
        after = False
        for child in list(self.children):
            if child is users[-1]:
                after = True
            elif after:
                await child.remove()
