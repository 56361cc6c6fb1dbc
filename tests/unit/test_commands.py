"""The slash-command registry: parsing, completion, hints instead of crashes, handlers' effects."""

from __future__ import annotations

import threading

import pytest

from tests.support.fake_engine import FakeEngine, install_fake_profiles  # noqa: E402

from medchat.app.commands import REGISTRY, classify, format_table  # noqa: E402
from medchat.core.profiles import ProfileStore  # noqa: E402
from medchat.app.session import ChatSession  # noqa: E402


@pytest.fixture
def session():
    engine = FakeEngine(install_fake_profiles(ProfileStore()))
    return ChatSession(engine, history=None, kb=None, triage=lambda t: None)


def ask(session, text):
    return list(session.send(text))


def run(session, line):
    return REGISTRY.run(session, line)


@pytest.mark.parametrize("line, expected", [
    ("/help", ("command", "/help")), ("  /use base ", ("command", "/use base")),
    ("//etc/hosts is a file", ("message", "/etc/hosts is a file")),
    ("clear", ("command", "/clear")), ("EXIT", ("command", "/quit")),
    ("how do I clear my throat?", ("message", "how do I clear my throat?")),
    ("exit wounds heal slowly?", ("message", "exit wounds heal slowly?")),
])
def test_classify_only_takes_slash_lines_and_whole_plain_words(line, expected):
    assert classify(line) == expected


def test_parse_keeps_multiline_arguments():
    cmd, args = REGISTRY.parse("/system You are terse.\nAnswer in one line.")
    assert cmd.name == "system" and args == "You are terse.\nAnswer in one line."
    cmd, args = REGISTRY.parse("/system\nline one\nline two")
    assert cmd.name == "system" and args == "line one\nline two"


@pytest.mark.parametrize("line, hint", [
    ("/foo", "unknown command /foo — try /help"),
    ("/", "unknown command / — try /help"),
    ("/use", "usage: /use NAME"),
    ("/use nope", "unknown profile 'nope'"),
    ("/use judge-rm", "cannot chat"),
    ("/set temperature", "usage: /set NAME VALUE"),
    ("/set warmth 3", "unknown setting 'warmth'"),
    ("/set top_p 7", "top_p must be between"),
    ("/show colours", "unknown /show target"),
    ("/undo", "nothing to undo"),
    ("/retry", "nothing to retry"),
    ("/compare base", "usage: /compare A B"),
    ("/compare base covid-sft", "nothing to compare"),
    ("/load 3", "history is off"),
    ("/export md x.md", "history is off"),
    ("/export pdf x.pdf", "usage: /export md|json PATH"),
    ("/kb nosuchkb", "unknown knowledge base 'nosuchkb'"),
    ("/help nosuch", "unknown command /nosuch"),
])
def test_mistakes_get_a_one_line_hint(session, line, hint):
    result = run(session, line)
    assert result.kind == "error" and hint in result.text and "\n" not in result.text


def test_commands_needing_the_model_say_so_while_it_loads():
    assert "still loading" in REGISTRY.run(None, "/use base").text
    assert REGISTRY.run(None, "/quit").action == "quit"
    assert REGISTRY.run(None, "/help").screen == "help"


def test_set_show_and_system(session):
    assert run(session, "/set temperature 0.4").text == "temperature = 0.4"
    assert run(session, "/set seed 7").kind == "text" and session.settings.seed == 7
    shown = dict(run(session, "/show settings").rows)
    assert shown["temperature"] == "0.4" and shown["seed"] == "7"
    run(session, "/system Be brief.\nUse lists.")
    assert session.system_prompt == "Be brief.\nUse lists."
    assert run(session, "/show system").text == "Be brief.\nUse lists."
    run(session, "/system reset")
    assert session.system_prompt != "Be brief.\nUse lists." and "medchat" in session.system_prompt


def test_use_and_profiles(session):
    assert "covid-sft › covid-dpo" in run(session, "/use covid-dpo").text
    assert session.profile.name == "covid-dpo"
    table = run(session, "/profiles")
    active = [r for r in table.rows if r[0] == "*"]
    assert [r[1] for r in active] == ["covid-dpo"] and table.screen == "profiles"
    assert "covid-pairs" in table.plain()
    rows = dict(run(session, "/show profile").rows)
    assert rows["stage"] == "dpo" and "reward_acc=0.8" in rows["metrics"]


def test_kb_on_off(session):
    assert run(session, "/kb off").text == "knowledge base: off" and session.kb_name is None
    assert run(session, "/kb on").text == "knowledge base: default" and session.kb_name == "default"
    assert run(session, "/kb").text == "knowledge base: default"


def test_undo_retry_compare_clear(session):
    ask(session, "first")
    ask(session, "second")
    result = run(session, "/undo")
    assert result.action == "reload" and [m["content"] for m in session.messages if m["role"] == "user"] == ["first"]

    result = run(session, "/retry covid-sft")
    assert result.kind == "stream" and session.profile.name == "base"  # nothing happens until streamed
    events = list(result.events(threading.Event()))
    assert events[-1].kind == "done" and events[-1].text.startswith("**covid-sft** answers: first")
    assert len(session.messages) == 2 and session.profile.name == "covid-sft"

    result = run(session, "/compare base covid-dpo")
    answers = result.compute(threading.Event())
    assert list(answers) == ["base", "covid-dpo"] and answers["base"].startswith("**base**")
    assert session.profile.name == "covid-sft"

    assert run(session, "/clear").action == "clear" and session.messages == []


def test_sources_lists_last_passages(session):
    from types import SimpleNamespace

    assert "no sources" in run(session, "/sources").text
    session.last_sources = [SimpleNamespace(text="t", source="a.md", title="Asthma", section="Triggers", score=0.5)]
    result = run(session, "/sources")
    assert result.action == "toggle_sources" and "[1] Asthma — Triggers (a.md, score 0.50)" in result.text


def test_completion(session):
    assert REGISTRY.complete(session, "/re") == ["/retry "]
    assert REGISTRY.complete(session, "/use covid") == ["/use covid-dpo", "/use covid-sft"]
    assert "/set temperature" in REGISTRY.complete(session, "/set te")
    assert REGISTRY.complete(session, "/set temperature 0") == []
    assert REGISTRY.complete(session, "/compare covid-sft b") == ["/compare covid-sft base"]
    assert set(REGISTRY.complete(session, "/kb ")) >= {"/kb on", "/kb off", "/kb default"}
    assert REGISTRY.complete(session, "/nosuch x") == [] and REGISTRY.complete(session, "plain text") == []


def test_help_is_generated_from_the_registry(session):
    text = run(session, "/help").text
    for cmd in REGISTRY.commands():
        assert cmd.usage in text
    assert run(session, "/help retry").text.startswith("/retry [PROFILE]")


def test_format_table_aligns_columns():
    lines = format_table(["a", "bb"], [["xxx", "y"]]).splitlines()
    assert lines[0].index("bb") == lines[2].index("y")


def test_forget_deletes_the_current_conversation(tmp_path):
    from medchat.app.history import HistoryStore

    with HistoryStore(tmp_path / "h.db") as history:
        engine = FakeEngine(install_fake_profiles(ProfileStore()))
        session = ChatSession(engine, history=history, kb=None, triage=lambda t: None)
        ask(session, "keep this one")
        kept = session.conversation_id
        run(session, "/clear")
        ask(session, "forget this one")
        gone = session.conversation_id
        result = run(session, "/forget")
        assert result.kind == "action" and result.action == "clear" and str(gone) in result.text
        assert session.messages == [] and session.conversation_id is None
        assert [c["id"] for c in history.conversations()] == [kept]
        assert run(session, "/forget").kind == "action"  # nothing saved yet: still a clean new conversation
        assert [c["id"] for c in history.conversations()] == [kept]
