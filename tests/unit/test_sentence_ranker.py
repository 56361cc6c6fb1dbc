"""The key-fact sentence ranker: its fit on grounded questions, the fit-ranker command, the shipped file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb import section_intent, sentence_ranker
from kb.embedder import get_embedder
from kb.grounded import GroundedQuestion, load_questions, select
from kb.key_facts import FEATURES, load_ranker
from kb.knowledge import KnowledgeBase
from tests.support.hashing_embedder import HashingEmbedder

DOCS = Path(__file__).parents[1] / "data" / "kb" / "docs"
ASKED = [  # (question, condition file, section, expected facts): every condition hashes to the train split
    ("what is the cure for velmora fever", "velmora-fever.md", "Treatment", ["kelvaran"]),
    ("how do doctors confirm velmora fever", "velmora-fever.md", "Diagnosis", ["lantern test"]),
    ("what is the first sign of velmora fever", "velmora-fever.md", "Symptoms", ["violet ring"]),
    ("which inhaler opens the airways quickly in asthma", "asthma.md", "Treatment", ["reliever inhaler opens"]),
    ("what are typical asthma symptoms", "asthma.md", "Symptoms", ["wheezing"]),
    ("when is asthma an emergency", "asthma.md", "Red flags", ["lips turn blue"]),
]
QUESTIONS = [GroundedQuestion(id=f"r{i}", question=t, source=src, section=sec, facts=tuple(f))
             for i, (t, src, sec, f) in enumerate(ASKED)]


@pytest.fixture
def small_kb():
    emb = HashingEmbedder(64, id="ranker-64")
    get_embedder(emb)
    return KnowledgeBase.build([DOCS], "rk", embedder=emb), emb


def test_examples_label_the_sentences_that_hold_a_fact(small_kb):
    base, emb = small_kb
    data = sentence_ranker.examples(QUESTIONS, lambda query: base.search(query, k=4), emb)
    assert [source for source, _ in data] == [q.source for q in QUESTIONS]
    for (_, rows), q in zip(data, QUESTIONS):
        assert all(len(f) == len(FEATURES) for f, _, _ in rows)
        assert any(label for _, label, _ in rows), f"the passages retrieved for {q.question!r} hold its fact"
        assert not all(label for _, label, _ in rows)


def test_the_fitted_ranker_puts_a_fact_first_more_often_than_chance(small_kb):
    base, emb = small_kb
    ranker = sentence_ranker.fit(QUESTIONS, lambda query: base.search(query, k=4), emb)
    assert ranker["features"] == list(FEATURES) and len(ranker["weights"]) == len(FEATURES)
    assert ranker["questions"] == len(QUESTIONS)
    assert ranker["questions_sha256"] == section_intent.questions_digest(QUESTIONS)
    data = sentence_ranker.examples(QUESTIONS, lambda query: base.search(query, k=4), emb)
    fitted = sentence_ranker.top_k_hits(data, ranker)
    chance = sum(sum(label for _, label, _ in rows) / len(rows) for _, rows in data) / len(data)
    assert fitted["top1"] > chance and fitted["top4"] >= fitted["top1"]
    assert set(ranker["cross_validated"]) == {"top1", "top2", "top3", "top4"}


def test_fit_ranker_command_saves_a_ranker_the_chat_can_load(small_kb, tmp_path, capsys):
    from tests.unit.test_kb_cli import run

    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps({"id": q.id, "question": q.question, "source": q.source,
                                               "section": q.section, "facts": list(q.facts)}) for q in QUESTIONS))
    out = tmp_path / "ranker.json"
    assert run("kb", "fit-ranker", "--kb", "rk", "--questions", str(questions), "--out", str(out), "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["saved"] == str(out) and result["questions"] == len(QUESTIONS)
    assert load_ranker(out)["weights"] == result["weights"]
    assert not out.with_name("ranker.json.tmp").exists()


def test_the_shipped_ranker_was_fitted_on_todays_grounded_train_split():
    ranker = load_ranker()
    train = [q for q in select(load_questions(), "train") if q.covered]
    assert ranker["questions_sha256"] == section_intent.questions_digest(train), \
        "the grounded questions changed since the ranker was fitted: run `medchat kb fit-ranker`"
    assert ranker["questions"] == len(train)
