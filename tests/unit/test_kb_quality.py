"""recall@k over question sets (fake embedder; the real-model run is in the integration tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb import KnowledgeBase
from kb.quality import load_questions, recall_at_k
from tests.support.hashing_embedder import HashingEmbedder
from medchat.core.errors import UserError

DATA = Path(__file__).parents[1] / "data"
SAMPLE = DATA / "kb_questions_sample.jsonl"


@pytest.fixture
def notes():
    KnowledgeBase.build([DATA / "kb" / "docs"], "notes", embedder=HashingEmbedder(64))
    return "notes"


def test_sample_questions_load():
    qs = load_questions(SAMPLE)
    assert len(qs) == 5 and all(q["question"] and q["source"] and q["facts"] for q in qs)


def test_hits_count_only_expected_sources(notes, tmp_path):
    good = recall_at_k(k=5, kb=notes, questions=SAMPLE)
    assert good["questions"] == 5 and good["hits"] == 5 - len(good["misses"])
    assert good["recall"] == good["hits"] / 5
    # the same questions pointed at a file that is not in the KB can never hit
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text("".join(json.dumps({**json.loads(line), "source": "not-there.md"}) + "\n"
                             for line in SAMPLE.read_text().splitlines()))
    bad = recall_at_k(k=5, kb=notes, questions=wrong)
    assert bad["hits"] == 0 and bad["recall"] == 0 and len(bad["misses"]) == 5
    assert bad["misses"][0]["expected"] == "not-there.md" and bad["misses"][0]["got"]


def test_recall_grows_with_k_and_facts_are_checked(notes):
    r1 = recall_at_k(k=1, kb=notes, questions=SAMPLE)
    r10 = recall_at_k(k=10, kb=notes, questions=SAMPLE)
    assert r1["hits"] <= r10["hits"] and r1["fact_recall"] <= r10["fact_recall"]
    assert r10["by_set"]["kb_questions_sample.jsonl"]["questions"] == 5


def test_question_folder_and_bad_lines(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"question": "q?", "source": "a.md"}) + "\n\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"question": "r?", "source": "b.md", "facts": ["x"]}) + "\n")
    assert [q["source"] for q in load_questions(tmp_path)] == ["a.md", "b.md"]
    (tmp_path / "c.jsonl").write_text('{"question": "no source"}\n')
    with pytest.raises(UserError, match="c.jsonl:1"):
        load_questions(tmp_path)
    with pytest.raises(UserError, match="not found"):
        load_questions(tmp_path / "missing.jsonl")
