"""`medchat history ...` handlers, driven through argparse and `register`."""

from __future__ import annotations

import argparse
import json

import pytest

from medchat.app.cli import history_cmd
from medchat.core.errors import UserError
from medchat.app.history import HistoryStore


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="medchat")
    history_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def seeded():
    with HistoryStore() as store:
        flu = store.new_conversation(profile="base")
        store.add_message(flu, "user", "How long does flu last?")
        store.add_message(flu, "assistant", "Usually about a week [1].", sources=[{"title": "Flu basics"}])
        rash = store.new_conversation(title="Rash [red] question")
        store.add_message(rash, "user", "I have an itchy rash on my arm")
        store.add_message(rash, "assistant", "It may be eczema", status="cancelled")
    return {"flu": flu, "rash": rash}


def test_list_json_and_table(seeded, capsys):
    assert run(["history", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [seeded["rash"], seeded["flu"]]
    assert rows[1]["title"] == "How long does flu last?" and rows[1]["message_count"] == 2

    assert run(["history", "list", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "Rash [red]" in out and "flu" not in out.lower()

    assert run(["history"]) == 0  # bare `history` lists too
    assert "How long does flu" in capsys.readouterr().out


def test_list_when_empty(capsys):
    assert run(["history", "list"]) == 0
    assert "No saved conversations" in capsys.readouterr().out
    assert run(["history", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_show(seeded, capsys):
    assert run(["history", "show", str(seeded["rash"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["status"] for m in data["messages"]] == ["complete", "cancelled"]
    assert run(["history", "show", str(seeded["rash"])]) == 0
    out = capsys.readouterr().out
    assert "itchy rash" in out and "eczema" in out and "cancelled" in out


def test_search(seeded, capsys):
    assert run(["history", "search", "itchy", "rash", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["conversation_id"] for h in hits] == [seeded["rash"]]
    assert run(["history", "search", '"flu last?"']) == 0
    assert "flu" in capsys.readouterr().out
    assert run(["history", "search", "zzzz-nothing"]) == 0
    assert "No messages match" in capsys.readouterr().out


def test_export(seeded, tmp_path, capsys):
    target = tmp_path / "flu.md"
    assert run(["history", "export", str(seeded["flu"]), "md", str(target)]) == 0
    assert str(target) in capsys.readouterr().out
    text = target.read_text(encoding="utf-8")
    assert "How long does flu last?" in text and "Flu basics" in text
    target = tmp_path / "flu.json"
    assert run(["history", "export", str(seeded["flu"]), "json", str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8"))["conversation"]["id"] == seeded["flu"]


def test_export_refuses_to_overwrite_without_force(seeded, tmp_path):
    target = tmp_path / "flu.md"
    target.write_text("mine", encoding="utf-8")
    with pytest.raises(UserError, match="already exists.*--force"):
        run(["history", "export", str(seeded["flu"]), "md", str(target)])
    assert target.read_text(encoding="utf-8") == "mine"
    assert run(["history", "export", str(seeded["flu"]), "md", str(target), "--force"]) == 0
    assert "How long does flu last?" in target.read_text(encoding="utf-8")


def test_delete_and_purge(seeded, capsys):
    assert run(["history", "delete", str(seeded["flu"])]) == 0
    assert f"Deleted conversation {seeded['flu']}" in capsys.readouterr().out
    with HistoryStore() as store:
        assert [c["id"] for c in store.conversations()] == [seeded["rash"]]
    assert run(["history", "purge", "--before", "2000-01-01"]) == 0  # nothing that old
    assert "Deleted 0 conversations" in capsys.readouterr().out
    assert run(["history", "purge"]) == 0
    assert "Deleted 1 conversation." in capsys.readouterr().out
    with HistoryStore() as store:
        assert store.conversations() == []
    with pytest.raises(SystemExit) as exc:
        run(["history", "purge", "--before", "last week"])
    assert exc.value.code == 2


def test_errors(seeded, tmp_path):
    for argv in (["history", "show", "999"], ["history", "export", "999", "md", str(tmp_path / "x.md")]):
        with pytest.raises(UserError, match="medchat history list"):
            run(argv)
    for argv in (["history", "export", "1", "pdf", "x"], ["history", "list", "--limit", "0"], ["history", "show", "abc"]):
        with pytest.raises(SystemExit) as exc:
            run(argv)
        assert exc.value.code == 2
