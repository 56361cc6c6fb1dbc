"""Pilot tests of messages typed before their turn: while the model loads and during a reply, each is
committed to history at once and answered in order; closing the chat keeps them."""

from __future__ import annotations

import threading

from tests.support.fake_engine import FakeEngine, wait_until
from tests.support.pilot import SIZE, idle, send, status

from medchat.app.tui.widgets.assistant_message import AssistantMessage
from medchat.app.tui.widgets.user_message import UserMessage


async def test_messages_typed_while_loading_wait_for_the_model(store):
    from medchat.app.session import ChatSession
    from medchat.app.tui.app import MedchatApp

    release = threading.Event()

    def loader():
        release.wait(60)
        return ChatSession(FakeEngine(store), history=None, kb=None, triage=lambda t: None)

    app = MedchatApp(loader=loader, loading_label="loading fake-base…", disclaimer="x")
    async with app.run_test(size=SIZE) as pilot:
        assert "loading fake-base…" in status(app)
        await send(app, pilot, "are you there?")
        await pilot.pause()
        assert app.query_one(UserMessage).has_class("pending") and not app.query(AssistantMessage)
        release.set()
        await wait_until(lambda: app.session is not None, pilot=pilot)
        await idle(app, pilot)
        assert "are you there?" in app.query_one(AssistantMessage).text
        assert not app.query_one(UserMessage).has_class("pending")


async def test_messages_typed_while_loading_are_kept_when_the_chat_closes(store, history):
    from medchat.app.tui.app import MedchatApp

    never = threading.Event()

    def loader():  # the model never finishes loading while the user types
        never.wait(30)
        raise RuntimeError("closed before loading")

    app = MedchatApp(loader=loader, loading_label="loading…", disclaimer="x", history=history)
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "first while loading")
        await send(app, pilot, "second while loading")
        await pilot.pause()
    never.set()
    conv = history.last_conversation()
    assert [(m["role"], m["content"]) for m in history.messages(conv["id"])] == [
        ("user", "first while loading"), ("user", "second while loading")]


async def test_messages_typed_while_loading_are_in_the_history_before_any_answer(store, history):
    """Committed when typed, not on close: a kill -9 during the model load loses nothing. Once the
    model is ready they are answered in order, in one conversation, each written once."""
    from medchat.app.session import ChatSession
    from medchat.app.tui.app import MedchatApp

    release = threading.Event()

    def loader():
        release.wait(30)
        return ChatSession(FakeEngine(store), history=history, kb=None, triage=lambda t: None)

    app = MedchatApp(loader=loader, loading_label="loading…", disclaimer="x", history=history)
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "first while loading")
        await send(app, pilot, "second while loading")
        await pilot.pause()
        conv = history.last_conversation()
        assert [m["content"] for m in history.messages(conv["id"])] == ["first while loading", "second while loading"]
        release.set()
        await wait_until(lambda: app.session is not None, pilot=pilot)
        await wait_until(lambda: len(app.query(AssistantMessage)) == 2 and not app.busy, pilot=pilot)
        await idle(app, pilot)
    convs = history.conversations()
    assert len(convs) == 1
    rows = [(m["role"], m["content"]) for m in history.messages(convs[0]["id"])]
    assert [r for r, _ in rows] == ["user", "assistant", "user", "assistant"]
    assert rows[0][1] == "first while loading" and rows[2][1] == "second while loading"


async def test_a_message_typed_during_a_reply_is_committed_at_once_and_answered_after_it(make_app, history):
    app, session, engine = make_app()
    engine.gate = threading.Event()  # "one" stays mid-reply until the test lets it finish
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "one")
        await wait_until(lambda: engine.streaming.is_set(), pilot=pilot)
        await send(app, pilot, "two")
        await pilot.pause()
        during = [m["content"] for m in history.messages(session.conversation_id) if m["role"] == "user"]
        assert engine.streaming.is_set()  # "one" is still being answered ...
        assert during == ["one", "two"]  # ... and both messages are already in the database
        engine.gate.set()
        await wait_until(lambda: len(app.query(AssistantMessage)) == 2 and not app.busy, pilot=pilot)
        await idle(app, pilot)
    rows = [(m["role"], m["content"]) for m in history.messages(session.conversation_id)]
    assert [r for r, _ in rows] == ["user", "assistant", "user", "assistant"]
    assert (rows[0][1], rows[2][1]) == ("one", "two")
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]
