"""`medchat kb ...` handlers, called through an argparse parser built with `register`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from kb.cli import register
from kb.embedder import get_embedder
from tests.support.hashing_embedder import HashingEmbedder
from medchat.core import paths
from medchat.core.errors import UserError

DATA = Path(__file__).parents[1] / "data" / "kb"


@pytest.fixture
def fake():
    embedder = HashingEmbedder(48, id="cli-fake-48")
    get_embedder(embedder)  # registered: `--embedder cli-fake-48` now resolves to it
    return embedder


def run(*argv) -> int:
    parser = argparse.ArgumentParser(prog="medchat")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def json_out(capsys, *argv):
    capsys.readouterr()
    assert run(*argv) == 0
    return json.loads(capsys.readouterr().out)


def test_build_list_info_search_remove(fake, capsys):
    assert run("kb", "build", str(DATA / "docs"), "--name", "notes", "--embedder", fake.id) == 0
    out = capsys.readouterr().out
    assert "built KB 'notes': 4 added" in out

    listed = {e["name"]: e for e in json_out(capsys, "kb", "list", "--json")}
    assert listed["notes"]["sources"] == 4 and listed["notes"]["embedder"] == fake.id
    assert listed["default"]["built"] is False

    info = json_out(capsys, "kb", "info", "--name", "notes", "--json")
    assert info["embedder"] == fake.id and info["sources"] == 4
    assert "velmora-fever.md" in [f["source"] for f in info["files"]]

    hits = json_out(capsys, "kb", "search", "kelvaran bark tea", "--kb", "notes", "--k", "3", "--json")
    assert len(hits) == 3 and set(hits[0]) >= {"text", "source", "title", "section", "score"}
    assert hits[0]["source"] == "velmora-fever.md" and hits[0]["title"] == "Velmora Fever"

    assert run("kb", "remove", "velmora-fever.md", "--name", "notes") == 0
    assert "removed velmora-fever.md" in capsys.readouterr().out
    hits = json_out(capsys, "kb", "search", "kelvaran bark tea velmora", "--kb", "notes", "--k", "20", "--json")
    assert "velmora-fever.md" not in [h["source"] for h in hits]


def test_human_readable_output(fake, capsys):
    run("kb", "build", str(DATA / "formats"), "--name", "fmt", "--embedder", fake.id)
    capsys.readouterr()
    assert run("kb", "search", "measles rash", "--kb", "fmt") == 0
    out = capsys.readouterr().out
    assert "diseases.csv" in out and "source" in out
    assert run("kb", "list") == 0 and "fmt" in capsys.readouterr().out
    assert run("kb", "info", "--name", "fmt") == 0 and "records.jsonl" in capsys.readouterr().out


def test_build_name_defaults_to_folder_and_add_reports_problems(fake, capsys, tmp_path):
    folder = tmp_path / "My Notes"
    folder.mkdir()
    (folder / "a.md").write_text("# Gout\n\n## Care\nRaise the joint and use ice packs.\n")
    run("kb", "build", str(folder), "--embedder", fake.id)
    assert (paths.kb_dir() / "My-Notes" / "manifest.json").is_file()
    (tmp_path / "broken.pdf").write_bytes(b"nope")
    capsys.readouterr()
    assert run("kb", "add", str(tmp_path / "broken.pdf"), str(DATA / "docs" / "asthma.md"), "--name", "My-Notes") == 0
    out = capsys.readouterr().out
    assert "1 added" in out and "1 unreadable" in out and "broken.pdf" in out


def test_text_field_option(fake, capsys, tmp_path):
    f = tmp_path / "faq.jsonl"
    f.write_text(json.dumps({"q": "Is a cold serious?", "answer": "A cold usually clears within ten days."}) + "\n")
    with pytest.raises(UserError, match="no readable documents"):
        run("kb", "build", str(f), "--name", "faq", "--embedder", fake.id)
    assert run("kb", "build", str(f), "--name", "faq", "--embedder", fake.id, "--text-field", "answer") == 0
    hits = json_out(capsys, "kb", "search", "cold ten days", "--kb", "faq", "--json")
    assert hits[0]["text"] == "A cold usually clears within ten days."


def test_errors_are_user_errors(fake):
    with pytest.raises(UserError, match="medchat kb build"):
        run("kb", "search", "flu", "--kb", "missing")
    run("kb", "build", str(DATA / "docs"), "--name", "n", "--embedder", fake.id)
    with pytest.raises(UserError, match="no source 'nothing.md'"):
        run("kb", "remove", "nothing.md", "--name", "n")
    with pytest.raises(UserError, match="--k must be at least 1"):
        run("kb", "search", "flu", "--kb", "n", "--k", "0")
    other = HashingEmbedder(16, id="cli-other-16")
    get_embedder(other)
    with pytest.raises(UserError, match="was built with embedder cli-fake-48; rebuild it with --embedder cli-other-16"):
        run("kb", "search", "flu", "--kb", "n", "--embedder", other.id)
    with pytest.raises(UserError, match="was built with embedder"):
        run("kb", "add", str(DATA / "formats"), "--name", "n", "--embedder", other.id)


def test_eval_command(fake, capsys):
    run("kb", "build", str(DATA / "docs"), "--name", "n", "--embedder", fake.id)
    result = json_out(capsys, "kb", "eval", "--kb", "n", "--questions",
                      str(DATA.parent / "kb_questions_sample.jsonl"), "--json")
    assert result["questions"] == 5 and 0 <= result["recall"] <= 1
