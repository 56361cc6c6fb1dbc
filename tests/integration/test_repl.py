"""The plain REPL: prompt-toolkit driven through a pipe input, the non-TTY stdin path, and the
`medchat chat` CLI wiring (with a FakeEngine in place of the model)."""

from __future__ import annotations

import io
import sys

import pytest
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from tests.support.fake_engine import FakeEngine, install_fake_profiles  # noqa: E402
from tests.support.session_guard import guard  # noqa: E402

from medchat.core.profiles import ProfileStore  # noqa: E402
from medchat.app.repl import Repl, _completer  # noqa: E402
from medchat.app.session import ChatSession  # noqa: E402


@pytest.fixture
def history():
    from medchat.app.history.store import HistoryStore

    return HistoryStore()


@pytest.fixture
def session(history):
    engine = FakeEngine(install_fake_profiles(ProfileStore()))
    return ChatSession(engine, history=history, kb=None, triage=lambda t: None)


def run_tty(session, text: str) -> str:
    out = io.StringIO()
    with create_pipe_input() as inp:
        inp.send_text(text)
        inp.close()  # end of input: the REPL sees EOF like Ctrl+D
        Repl(session, tty=True, input=inp, output=DummyOutput(), out=out).run()
    return out.getvalue()


def run_plain(session, text: str) -> str:
    out = io.StringIO()
    assert Repl(session, tty=False, stdin=io.StringIO(text), out=out).run() == 0
    return out.getvalue()


def test_tty_streams_replies_and_runs_commands(session, history, medchat_home):
    out = run_tty(session, "is a cold serious?\n/use covid-sft\nand the flu?\n/show profile\n/quit\n")
    assert "**base** answers: is a cold serious?" in out
    assert "now using covid-sft" in out and "**covid-sft** answers: and the flu?" in out
    assert "covid-qa (120 rows)" in out  # /show profile lists the manifest's datasets
    stored = history.messages(session.conversation_id)
    assert [m["role"] for m in stored] == ["user", "assistant"] * 2
    assert (medchat_home / "repl_history").read_text().count("is a cold serious?") == 1
    assert (medchat_home / "repl_history").stat().st_mode & 0o777 == 0o600  # typed questions are private


def test_tty_multiline_block_and_unknown_command(session):
    out = run_tty(session, '"""first line\nsecond line"""\n/frobnicate\n/set top_k lots\n')
    assert session.messages[0]["content"] == "first line\nsecond line"
    assert "unknown command /frobnicate — try /help" in out
    assert "top_k must be an integer" in out


def test_completer_offers_commands_and_profile_names(session):
    completer = _completer(session)

    def texts(line):
        return [c.text for c in completer.get_completions(Document(line), None)]

    assert "/use " in texts("/u") and "/undo " in texts("/u")
    assert texts("/use covid-s") == ["/use covid-sft"]
    assert set(texts("/compare base ")) >= {"/compare base covid-sft", "/compare base covid-dpo"}
    assert texts("hello /u") == []


def test_non_tty_reads_questions_and_commands_from_stdin(session, history):
    out = run_plain(session, "first question\n/undo\nsecond question\n/retry covid-dpo\n")
    assert "removed the last exchange" in out
    assert [m["content"] for m in session.messages if m["role"] == "user"] == ["second question"]
    assert session.messages[-1]["content"].startswith("**covid-dpo** answers: second question")
    assert len(history.messages(session.conversation_id)) == 2


def test_plain_words_only_hijack_whole_lines(session):
    run_plain(session, "how do I clear my sinuses?\nclear\n")
    assert session.messages == [] and session.conversation_id is None  # the bare word started a new chat
    run_plain(session, "exit\nnever sent\n")
    assert session.messages == []


def test_failed_reply_is_rolled_back(session, history):
    guard(session)  # the session alone settles a failed turn
    session.engine.fail = RuntimeError("no memory")
    out = run_plain(session, "will it fail?\n")
    assert "reply failed: RuntimeError: no memory" in out
    assert session.messages == []
    rows = [(m["role"], m["content"], m["status"]) for m in history.messages(session.conversation_id)]
    assert rows == [("user", "will it fail?", "error")]


def test_failed_reply_is_offered_again_at_the_tty(session, history):
    session.engine.fail = RuntimeError("no memory")
    with create_pipe_input() as inp:
        repl = Repl(session, tty=True, input=inp, output=DummyOutput(), out=io.StringIO())
        repl.stream(lambda cancel: session.send("will it fail?", cancel), prompt="will it fail?")
    assert repl._refill == "will it fail?" and session.messages == []


def test_history_title_export_and_load(session, history, tmp_path):
    out = run_plain(session, f"about measles\n/title Measles chat\n/export md {tmp_path / 'c.md'}\n/clear\n/history measles\n")
    convs = history.conversations()
    assert len(convs) == 1 and convs[0]["title"] == "Measles chat"
    first = convs[0]["id"]
    assert "title set: Measles chat" in out and f"{first}" in out.split("/history")[-1]
    assert "about measles" in (tmp_path / "c.md").read_text()
    assert session.conversation_id is None
    run_plain(session, f"/load {first}\n")
    assert session.conversation_id == first and session.messages[0]["content"] == "about measles"
    missing = run_plain(session, "/load 9999\n")
    assert missing.startswith("medchat: ") and "9999" in missing


def test_cli_chat_plain_and_continue(monkeypatch, capsys, history):
    from medchat.app.cli import chat, main

    store = install_fake_profiles(ProfileStore())
    monkeypatch.setattr(chat, "make_engine", lambda args, config=None: FakeEngine(store))
    monkeypatch.setattr(sys, "stdin", io.StringIO("what is a fever?\n"))
    assert main(["chat", "--no-kb"]) == 0  # stdin is not a TTY: the plain path, no TUI
    assert "answers: what is a fever?" in capsys.readouterr().out

    monkeypatch.setattr(sys, "stdin", io.StringIO("and a cough?\n"))
    assert main(["chat", "--no-kb", "--continue", "--profile", "covid-sft"]) == 0
    convs = history.conversations()
    assert len(convs) == 1  # the follow-up went into the same conversation
    assert [m["content"] for m in history.messages(convs[0]["id"]) if m["role"] == "user"] == ["what is a fever?", "and a cough?"]

    assert main(["chat", "--profile", "no-such-profile"]) == 1
    assert "unknown profile 'no-such-profile'" in capsys.readouterr().err


def test_cli_chat_goes_on_without_a_broken_kb(monkeypatch, capsys):
    import kb

    from medchat.app.cli import chat, main

    def broken(*args, **kwargs):
        raise RuntimeError("index file missing")

    monkeypatch.setattr(chat, "make_engine", lambda args, config=None: FakeEngine(install_fake_profiles(ProfileStore())))
    monkeypatch.setattr(kb, "_open", {})  # no KB opened by an earlier test
    monkeypatch.setattr(kb.KnowledgeBase, "open", classmethod(broken))  # the warm-up started beside the model load fails
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello?\n/kb\n"))
    assert main(["chat"]) == 0
    out, err = capsys.readouterr()
    assert "knowledge base 'default' is unavailable (index file missing)" in err
    assert "answers: hello?" in out and "knowledge base: off" in out
