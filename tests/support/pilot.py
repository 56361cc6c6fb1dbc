"""Shared Pilot helpers for the TUI tests."""

from __future__ import annotations

from tests.support.fake_engine import wait_until

from medchat.app.tui.widgets.chat_input import ChatInput
from medchat.app.tui.widgets.status_bar import StatusBar

SIZE = (100, 34)


async def send(app, pilot, text: str) -> None:
    """Put `text` in the input (as a paste would) and submit it (what Enter does; see test_enter_keys)."""
    box = app.query_one(ChatInput)
    box.load_text(text)
    box.submit()
    await pilot.pause()


async def idle(app, pilot, timeout: float = 60.0) -> None:
    await pilot.pause()
    await wait_until(lambda: not app.busy and not app._queue, timeout, pilot)
    await pilot.pause()


def status(app) -> str:
    return str(app.query_one(StatusBar).render())
