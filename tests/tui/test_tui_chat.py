"""Pilot tests of the chat screen: streaming, commands, cancel, failures, queueing while loading."""

from __future__ import annotations

from types import SimpleNamespace

from tests.support.fake_engine import wait_until
from tests.support.pilot import SIZE, idle, send, status
from tests.support.session_guard import guard

from medchat.app.tui.widgets.assistant_message import AssistantMessage
from medchat.app.tui.widgets.chat_input import ChatInput
from medchat.app.tui.widgets.compare_view import CompareView
from medchat.app.tui.widgets.notice import Notice
from medchat.app.tui.widgets.sources_panel import SourcesPanel
from medchat.app.tui.widgets.triage_notice import TriageNotice
from medchat.app.tui.widgets.user_message import UserMessage

def notices(app) -> list[str]:
    return [str(n.render()) for n in app.query(Notice)]


async def test_message_streams_then_renders_markdown(make_app, history, monkeypatch):
    seen = []  # (still streaming?, text so far) at every chunk the widget received
    original = AssistantMessage.append

    async def spy(self, chunk):
        await original(self, chunk)
        seen.append((self.has_class("streaming"), self.text))

    monkeypatch.setattr(AssistantMessage, "append", spy)
    app, session, engine = make_app(delay=0.01)
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "what helps a fever?")
        await idle(app, pilot)
        reply = app.query_one(AssistantMessage)
        assert len(seen) > 5 and all(streaming for streaming, _ in seen)
        assert all(reply.text.startswith(text) for _, text in seen) and len(seen[0][1]) < len(reply.text)
        assert not reply.has_class("streaming")
        assert "what helps a fever?" in reply.text
        # the final render parsed the list and the code fence
        assert reply.query("MarkdownBulletList") and reply.query("MarkdownFence")
        assert [m["role"] for m in history.messages(session.conversation_id)] == ["user", "assistant"]
        assert "42.0 tok/s" in status(app) and f"ctx {session.context_tokens()}/2048" in status(app)


async def test_use_changes_status_bar_and_next_reply(make_app):
    app, session, engine = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert "profile base" in status(app)
        await send(app, pilot, "/use covid-dpo")
        await idle(app, pilot)
        assert "profile covid-dpo (covid-sft › covid-dpo)" in status(app)
        await send(app, pilot, "hello")
        await idle(app, pilot)
        assert engine.calls[-1]["profile"] == "covid-dpo"
        assert app.query(AssistantMessage).last().border_title == "covid-dpo"


async def test_escape_cancels_streaming_reply(make_app, history):
    app, session, engine = make_app(delay=0.05)
    engine.reply = lambda profile, q: " ".join(["word"] * 400)
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "tell me everything")
        await wait_until(lambda: app.query(AssistantMessage), pilot=pilot)
        await pilot.press("escape")
        await idle(app, pilot)
        reply = app.query_one(AssistantMessage)
        assert reply.has_class("cancelled")
        assert len(reply.text.split()) < 400
        stored = history.messages(session.conversation_id)
        assert stored[-1]["role"] == "assistant" and stored[-1]["status"] == "cancelled"


async def test_undo_retry_clear(make_app, history):
    app, session, engine = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "first question")
        await idle(app, pilot)
        await send(app, pilot, "second question")
        await idle(app, pilot)
        await send(app, pilot, "/undo")
        await idle(app, pilot)
        assert [w.text for w in app.query(UserMessage)] == ["first question"]
        assert len(session.messages) == 2 and len(history.messages(session.conversation_id)) == 2

        await send(app, pilot, "/retry covid-sft")
        await idle(app, pilot)
        replies = list(app.query(AssistantMessage))
        assert len(replies) == 1 and replies[0].border_title == "covid-sft"
        assert "covid-sft" in replies[0].text and session.profile.name == "covid-sft"
        assert [m["role"] for m in history.messages(session.conversation_id)] == ["user", "assistant"]

        old = session.conversation_id
        await send(app, pilot, "/clear")
        await idle(app, pilot)
        assert not app.query(UserMessage) and session.conversation_id is None
        assert any(c["id"] == old for c in history.conversations())


async def test_compare_shows_two_profiles(make_app):
    app, session, engine = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "/compare base covid-sft")
        await idle(app, pilot)
        assert any("nothing to compare" in n for n in notices(app))
        await send(app, pilot, "is it a cold?")
        await idle(app, pilot)
        await send(app, pilot, "/compare base covid-sft")
        await idle(app, pilot)
        view = app.query_one(CompareView)
        assert list(view.answers) == ["base", "covid-sft"]
        assert "covid-sft" in view.answers["covid-sft"] and "base" in view.answers["base"]
        assert session.profile.name == "base"  # compare restores the active profile


async def test_triage_guidance_shown_before_reply(make_app):
    from medchat.app.triage import triage

    question = "I have crushing chest pain spreading to my left arm and I am sweating"
    assert triage(question) is not None  # the premise: real triage flags this message
    app, session, engine = make_app(delay=0.01, triage=triage)
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, question)
        await idle(app, pilot)
        kids = list(app.query_one("#conversation").children)
        kinds = [type(k) for k in kids]
        assert kinds.index(TriageNotice) < kinds.index(AssistantMessage)
        assert app.query_one(TriageNotice).guidance == triage(question).guidance


async def test_failed_reply_puts_prompt_back(make_app, history):
    app, session, engine = make_app()
    guard(session)  # the session alone settles a failed turn
    engine.fail = RuntimeError("backend exploded")
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "will this work?")
        await idle(app, pilot)
        assert any("backend exploded" in n for n in notices(app))
        assert app.query_one(ChatInput).text == "will this work?"
        assert session.messages == [] and not app.query(UserMessage)
        rows = [(m["role"], m["content"], m["status"]) for m in history.messages(session.conversation_id)]
        assert rows == [("user", "will this work?", "error")]  # kept, marked failed
        engine.fail = None
        await pilot.press("enter")
        await idle(app, pilot)
        assert len(session.messages) == 2
        rows = [(m["role"], m["status"]) for m in history.messages(session.conversation_id)]
        assert rows == [("user", "complete"), ("assistant", "complete")]  # the same row, sent again


async def test_unknown_command_and_bad_args_get_a_hint(make_app):
    app, session, engine = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "/foo")
        await send(app, pilot, "/set temperature hot")
        await idle(app, pilot)
        lines = notices(app)
        assert "unknown command /foo — try /help" in lines
        assert any("temperature must be a number" in n for n in lines)


async def test_completion_and_input_history(make_app):
    app, session, engine = make_app()
    async with app.run_test(size=SIZE) as pilot:
        box = app.query_one(ChatInput)
        box.load_text("/us")
        await pilot.press("tab")
        assert box.text == "/use "
        await pilot.press("c", "o", "tab")
        assert box.text == "/use covid-"  # common part of covid-dpo and covid-sft
        hint = str(app.query_one("#completions").render())
        assert "covid-dpo" in hint and "covid-sft" in hint
        box.load_text("")
        await send(app, pilot, "one")
        await idle(app, pilot)
        await send(app, pilot, "two")
        await idle(app, pilot)
        await pilot.press("up")
        assert box.text == "two"
        await pilot.press("up")
        assert box.text == "one"
        await pilot.press("down", "down")
        assert box.text == ""


async def test_enter_keys(make_app):
    app, session, engine = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h", "i", "ctrl+j", "y", "o")
        assert app.query_one(ChatInput).text == "hi\nyo" and not session.messages
        await pilot.press("enter")
        await idle(app, pilot)
        assert session.messages[0]["content"] == "hi\nyo"


async def test_sources_panel_lists_cited_passages(make_app):
    passage = SimpleNamespace(text="Rest and fluids help most colds.", source="nhs-colds.md", title="Common cold",
                              section="Treatment", score=0.81)
    app, session, engine = make_app(retriever=lambda q: [passage])
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "how do I treat a cold?")
        await idle(app, pilot)
        panel = app.query_one(SourcesPanel)
        assert not panel.display
        await pilot.press("ctrl+s")
        assert panel.display
        body = str(panel.query_one("#sources-body").render())
        assert "Common cold — Treatment" in body and "nhs-colds.md" in body
        await send(app, pilot, "/sources")
        await idle(app, pilot)
        assert not panel.display


async def test_key_facts_widget_quotes_the_passage_after_the_reply(make_app):
    from tests.support.hashing_embedder import HashingEmbedder

    from medchat.app.tui.widgets.key_facts import KeyFacts

    passage = SimpleNamespace(text="Colds last a week. Rest and fluids help most colds.", source="nhs-colds.md",
                              title="Common cold", section="Treatment", score=0.81)
    app, session, engine = make_app(retriever=lambda q: [passage], embedder=HashingEmbedder(dim=512))
    async with app.run_test(size=SIZE) as pilot:
        await send(app, pilot, "do rest and fluids help colds?")
        await idle(app, pilot)
        facts = app.query_one(KeyFacts)
        children = list(app.query_one("Conversation").children)
        assert children.index(facts) == children.index(app.query_one(AssistantMessage)) + 1
        body = str(facts.render())
        assert "[1] “Rest and fluids help most colds.”" in body and "nhs-colds.md" in body
        assert facts.border_title == "From the knowledge base"
        await send(app, pilot, "/facts off")
        await idle(app, pilot)
        await send(app, pilot, "do rest and fluids help colds?")
        await idle(app, pilot)
        assert len(app.query(KeyFacts)) == 1 and len(app.query(AssistantMessage)) == 2


async def test_continued_conversation_is_shown(make_app, history):
    app, session, engine = make_app()
    cid = history.new_conversation(profile="base")
    history.add_message(cid, "user", "an earlier question")
    history.add_message(cid, "assistant", "an earlier *answer*")
    session.load(cid)
    async with app.run_test(size=SIZE) as pilot:
        assert [w.text for w in app.query(UserMessage)] == ["an earlier question"]
        assert app.query_one(AssistantMessage).text == "an earlier *answer*"
        await pilot.press("up")
        assert app.query_one(ChatInput).text == "an earlier question"
        await send(app, pilot, "a follow-up")
        await idle(app, pilot)
        assert [m["content"] for m in history.messages(cid)][2] == "a follow-up"
        # the engine saw the earlier turns as context
        assert [m["content"] for m in engine.calls[-1]["messages"][1:3]] == ["an earlier question", "an earlier *answer*"]


async def test_model_that_fails_to_load_is_reported(store):
    from medchat.core.errors import UserError
    from medchat.app.tui.app import MedchatApp

    def loader():
        raise UserError("base model 'nope' not found")

    app = MedchatApp(loader=loader, loading_label="loading nope…", disclaimer="x")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.load_error, pilot=pilot)
        await pilot.pause()
        assert "base model 'nope' not found" in status(app)
        await send(app, pilot, "/quit")
    assert app.load_error == "base model 'nope' not found"


async def test_pane_follows_the_bottom_only_while_the_user_is_there(make_app):
    app, session, engine = make_app()
    engine.reply = lambda profile, q: "\n\n".join(f"paragraph {i}" for i in range(30))
    async with app.run_test(size=SIZE) as pilot:
        conv = app.query_one("#conversation")
        await send(app, pilot, "first long one")
        await idle(app, pilot)
        assert conv.max_scroll_y > 0 and conv.scroll_y == conv.max_scroll_y  # followed the reply down

        engine.delay = 0.01
        await send(app, pilot, "second long one")
        await wait_until(lambda: len(app.query(AssistantMessage)) == 2, pilot=pilot)
        conv.scroll_home(animate=False)
        conv.release_anchor()  # what a mouse-wheel scroll up does
        await idle(app, pilot)
        assert conv.scroll_y < conv.max_scroll_y  # left where the user put it


async def test_a_reply_cut_off_by_a_crash_is_shown_as_interrupted(make_app, history):
    app, session, engine = make_app()
    cid = history.new_conversation(profile="base")
    history.add_message(cid, "user", "a question")
    history.add_message(cid, "assistant", "half an ans", status="partial")
    session.load(cid)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        reply = app.query_one(AssistantMessage)
        assert reply.text == "half an ans" and reply.border_subtitle == "interrupted"
