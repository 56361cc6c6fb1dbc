"""A reply is written to history while it streams, a failed reply leaves nothing half-done, and the
session alone settles a failed turn (its message kept in history, marked 'error')."""

from __future__ import annotations

import pytest

from tests.support.fake_engine import FakeEngine  # noqa: E402

from medchat.app.history.store import HistoryStore  # noqa: E402
from medchat.core.profiles import ProfileStore  # noqa: E402
from medchat.app.session import PARTIAL_EVERY, ChatSession  # noqa: E402


def _rows(history, cid):
    return [(m["role"], m["content"], m["status"]) for m in history.messages(cid)]


def test_user_message_is_committed_before_triage_runs(medchat_home):
    history = HistoryStore()
    seen = []

    def triage(text):
        seen.append(_rows(history, session.conversation_id))
        return None

    session = ChatSession(FakeEngine(ProfileStore(), reply=lambda p, q: "fine."), history=history, kb=None, triage=triage)
    list(session.send("hello there"))
    assert seen == [[("user", "hello there", "complete")]]


def test_reply_is_saved_as_partial_while_streaming_then_completed(medchat_home):
    history = HistoryStore()
    words = " ".join(f"w{i}" for i in range(3 * PARTIAL_EVERY))
    session = ChatSession(FakeEngine(ProfileStore(), reply=lambda p, q: words), history=history, kb=None,
                          triage=lambda t: None)
    events = session.send("tell me")
    snapshots = []
    for n, ev in enumerate(e for e in events if e.kind == "chunk"):
        if n == PARTIAL_EVERY + 1:
            snapshots.append(_rows(history, session.conversation_id))
    snap = snapshots[0]
    assert snap[0] == ("user", "tell me", "complete")
    assert snap[1][0] == "assistant" and snap[1][2] == "partial" and snap[1][1].startswith("w0 w1")
    final = _rows(history, session.conversation_id)
    assert final[1] == ("assistant", words, "complete") and len(final) == 2


def test_a_reply_that_fails_mid_stream_is_removed(medchat_home):
    class Broken(FakeEngine):
        def stream(self, messages, settings, cancel=None, lead=""):
            yield from ["one ", "two "] * PARTIAL_EVERY
            raise RuntimeError("device lost")

    history = HistoryStore()
    session = ChatSession(Broken(ProfileStore()), history=history, kb=None, triage=lambda t: None)
    with pytest.raises(RuntimeError):
        list(session.send("question"))
    assert _rows(history, session.conversation_id) == [("user", "question", "error")]
    assert session.messages == []


def _session(history):
    engine = FakeEngine(ProfileStore(), reply=lambda p, q: "fine.")
    return ChatSession(engine, history=history, kb=None, triage=lambda t: None), engine


def test_a_failed_turn_keeps_the_message_marked_failed_and_a_resend_reuses_it(medchat_home):
    history = HistoryStore()
    session, engine = _session(history)
    list(session.send("first"))
    engine.fail = RuntimeError("no memory")
    with pytest.raises(RuntimeError):
        list(session.send("  second  "))
    assert [m["content"] for m in session.messages] == ["first", "fine."]  # the turn left the conversation
    assert _rows(history, session.conversation_id)[-1] == ("user", "second", "error")
    engine.fail = None
    list(session.send("second"))
    assert _rows(history, session.conversation_id) == [
        ("user", "first", "complete"), ("assistant", "fine.", "complete"),
        ("user", "second", "complete"), ("assistant", "fine.", "complete")]
    assert engine.calls[-1]["messages"][-1]["content"] == "second"


def test_a_new_text_after_a_failure_leaves_the_failed_message_in_history(medchat_home):
    history = HistoryStore()
    session, engine = _session(history)
    engine.fail = RuntimeError("no memory")
    with pytest.raises(RuntimeError):
        list(session.send("broken"))
    engine.fail = None
    list(session.send("something else"))
    assert _rows(history, session.conversation_id) == [
        ("user", "broken", "error"), ("user", "something else", "complete"), ("assistant", "fine.", "complete")]
    cid = session.conversation_id
    session.clear()
    session.load(cid)  # the unanswered message stays out of the conversation the model sees
    assert [m["content"] for m in session.messages] == ["something else", "fine."]


def test_a_failed_retry_keeps_the_question(medchat_home):
    history = HistoryStore()
    session, engine = _session(history)
    list(session.send("question"))
    engine.fail = RuntimeError("no memory")
    with pytest.raises(RuntimeError):
        list(session.retry())
    assert session.messages == [{"role": "user", "content": "question", "id": session.messages[0]["id"]}]
    assert _rows(history, session.conversation_id) == [("user", "question", "complete")]


def test_stats_come_with_the_done_event_and_the_session_counts_context(medchat_home):
    session, engine = _session(None)
    assert session.context_tokens() == engine.count_tokens([{"role": "system", "content": session.system_prompt}])
    done = list(session.send("how long?"))[-1]
    assert done.kind == "done" and done.stats.text == "fine." and done.stats.stop_reason == "eos"
    assert done.stats.prompt_tokens == engine.count_tokens(engine.calls[-1]["messages"])
    assert session.context_tokens() == engine.count_tokens(
        [{"role": "system", "content": session.system_prompt}, *({"role": m["role"], "content": m["content"]}
                                                                   for m in session.messages)])
