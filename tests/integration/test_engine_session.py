"""ChatSession over the real engine (tiny model): turns reuse the KV cache, KB context rides only on the
newest turn, /compare answers like each profile alone and restores the active one."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from medchat.app.context import KB_HEADER
from medchat.app.session import ChatSession
from medchat.core.settings import GenerationSettings
from test_engine_support import Trace, install, make_engine, one_torch_thread  # noqa: F401

SETTINGS = GenerationSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=6)


@dataclass
class FakePassage:
    title: str = "Influenza"
    section: str = "Symptoms"
    source: str = "influenza.md"
    text: str = "Fever and cough are common."
    score: float = 0.9


def session_for(engine, retriever=None):
    return ChatSession(engine, history=None, kb="default" if retriever else None, settings=SETTINGS,
                       system_prompt="Be brief.", retriever=retriever, triage=lambda t: None)


def turn(session, text):
    events = list(session.send(text))
    assert events[-1].kind == "done"
    return events


def test_second_turn_reuses_the_first_turns_cache(tiny_model_dir):
    engine = make_engine(tiny_model_dir, "float")
    s = session_for(engine)
    first = turn(s, "I have a fever.")[-1].stats.prompt_tokens
    second = turn(s, "And a cough too?")[-1].stats
    assert second.reused_tokens >= first - 1
    assert [m["role"] for m in s.messages] == ["user", "assistant", "user", "assistant"]
    assert s.messages[1]["content"] == s.messages[1]["content"].strip()


def test_kb_context_goes_only_on_the_newest_turn(tiny_model_dir):
    engine = make_engine(tiny_model_dir, "float")
    s = session_for(engine, retriever=lambda q: [FakePassage()])
    events = turn(s, "I have a fever.")
    assert [e.kind for e in events][0] == "sources"
    stats = turn(s, "And a cough?")[-1].stats
    msgs = s.build_messages([FakePassage()])
    assert msgs[1]["content"] == "I have a fever." and KB_HEADER in msgs[-1]["content"]
    assert stats.reused_tokens > 0


def test_cancel_through_the_session_keeps_the_partial_reply(tiny_model_dir):
    engine = make_engine(tiny_model_dir, "float")
    s = session_for(engine)
    s.set("max_new_tokens", 200)
    s.set("temperature", 1.0)
    s.set("seed", 3)
    cancel = threading.Event()
    chunks = 0
    for ev in s.send("Tell me about fever.", cancel):
        if ev.kind == "chunk":
            chunks += 1
            if chunks == 2:
                cancel.set()
    stats = ev.stats  # the "done" event's
    assert ev.kind == "done"
    assert stats.stop_reason == "cancelled" and stats.completion_tokens < 200
    assert s.messages[-1]["role"] == "assistant" and s.messages[-1]["content"] == stats.text


def test_compare_answers_like_each_profile_and_restores_the_active_one(tiny_model_dir, lora_a, lora_b,
                                                                       monkeypatch):
    engine = make_engine(tiny_model_dir, "float")
    install(engine.store, "a", lora_a, tiny_model_dir)
    install(engine.store, "b", lora_b, tiny_model_dir)
    trace = Trace(engine, monkeypatch)
    s = session_for(engine)
    s.use("b")
    turn(s, "I have a fever.")
    out = s.compare("base", "a")
    compared = [st.ids for st in trace.streams[-2:]]
    assert engine.profile.name == "b"
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "I have a fever."}]
    direct = []
    for name in ("base", "a"):
        engine.use(name)
        text, tokens, _ = trace.run(msgs, SETTINGS)
        assert text == out[name]
        direct.append(tokens)
    assert compared == direct and direct[0] != direct[1]
