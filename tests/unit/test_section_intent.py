"""The section head: which section a question asks about, and the re-ranking of search results by it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kb import section_intent
from kb.embedder import get_embedder
from kb.grounded import GroundedQuestion, load_questions, select
from kb.knowledge import KnowledgeBase, Passage
from medchat.core.errors import UserError
from tests.support.hashing_embedder import HashingEmbedder

DOCS = Path(__file__).parents[1] / "data" / "kb" / "docs"


def passage(section: str, score: float) -> Passage:
    return Passage(f"{section} text", "x.md", "X", section, score, f"x-{section}")


def q(i: int, text: str, section: str) -> GroundedQuestion:
    return GroundedQuestion(id=f"q{i}", question=text, source="velmora-fever.md", section=section, facts=("x",))


TRAINING = [q(i, t, s) for i, (t, s) in enumerate([
    ("what cream should I use to treat it", "Treatment"), ("which tablets treat this", "Treatment"),
    ("how do you treat it, any medicine", "Treatment"), ("what medicine or cream helps", "Treatment"),
    ("what test confirms it", "Diagnosis"), ("how do they test for it, a scan or a swab", "Diagnosis"),
    ("which scan confirms the diagnosis", "Diagnosis"), ("is there a blood test to confirm it", "Diagnosis"),
])]


def test_rerank_moves_the_asked_section_up_and_folds_the_boost_into_the_score():
    plain = [passage("Overview", 0.0328), passage("When to seek care", 0.0320), passage("Treatment", 0.0300)]
    out = section_intent.rerank(plain, {"Treatment": 0.9, "Overview": 0.05, "When to seek care": 0.05})
    assert [p.section for p in out] == ["Treatment", "Overview", "When to seek care"]
    assert out[0].score == pytest.approx(0.0300 + section_intent.WEIGHT * 0.9)
    assert [p.score for p in out] == sorted((p.score for p in out), reverse=True)
    assert plain[2].score == 0.0300  # the caller's passages are not changed


def test_rerank_keeps_the_order_when_no_section_is_known():
    plain = [passage("A", 0.03), passage("B", 0.03), passage("C", 0.02)]
    assert section_intent.rerank(plain, {"Treatment": 1.0}) == plain


def test_fit_predicts_the_section_of_an_unseen_question():
    head = section_intent.fit(TRAINING)
    assert set(head.classes) == {"Treatment", "Diagnosis"} and head.meta["questions"] == len(TRAINING)
    cream = head.probabilities("any cream to treat my rash")
    scan = head.probabilities("do I need a scan to confirm")
    assert cream["Treatment"] > 0.5 > scan["Treatment"]
    assert sum(cream.values()) == pytest.approx(1.0)


def test_templates_teach_a_section_no_question_names():
    conditions = {"gout.md": ["gout"], "acne.md": ["acne", "spots"]}
    templated = section_intent.template_questions(conditions, {"Overview": ["what is {n}?", "what causes {n}"]},
                                                  {"Overview": ["what is it exactly?"]})
    assert ("what is spots?", "Overview") in templated and ("what is it exactly?", "Overview") in templated
    assert len(templated) == 3 * 2 + 1
    head = section_intent.fit(TRAINING, templated)
    assert "Overview" in head.classes and head.meta["templated"] == 7
    p = head.probabilities("what causes eczema?")
    assert max(p, key=p.get) == "Overview"


def test_fit_needs_two_sections():
    with pytest.raises(UserError, match="at least two sections"):
        section_intent.fit([t for t in TRAINING if t.section == "Treatment"])


def test_save_and_load_round_trip(tmp_path):
    # three classes: sklearn then keeps coef_ in Fortran order, which must still be written row by row
    head = section_intent.fit(TRAINING, [("what is it", "Overview"), ("what causes it", "Overview")])
    path = tmp_path / "head.safetensors"
    head.save(path)
    loaded = section_intent.load(path)
    assert loaded.classes == head.classes and len(head.classes) == 3
    for text in ("which cream", "what is a scan", "what causes it"):  # float16 weights: close, not equal
        assert loaded.probabilities(text) == pytest.approx(head.probabilities(text), abs=1e-3)
    assert loaded.meta["questions_sha256"] == head.meta["questions_sha256"]
    assert not list(tmp_path.glob("*.tmp"))
    assert section_intent.load(tmp_path / "none.safetensors") is None


def _always(section: str) -> section_intent.SectionIntent:
    """A head that puts (nearly) all probability on `section`, whatever the question."""
    coef = np.zeros((2, 2 * section_intent.N_FEATURES), dtype="float32")
    return section_intent.SectionIntent((section, "Other"), coef, np.array([20.0, 0.0], dtype="float32"), {})


def test_search_re_ranks_with_the_stored_head(tmp_path, monkeypatch):
    emb = HashingEmbedder(48, id="intent-fake-48")
    get_embedder(emb)
    base = KnowledgeBase.build([DOCS], "n", embedder=emb)
    monkeypatch.setattr(section_intent, "MODEL_FILE", tmp_path / "head.safetensors")
    monkeypatch.setattr(section_intent, "WEIGHT", 1.0)
    query = "velmora fever quellin mite violet ring"
    plain = base.search(query, k=8, rerank=False)
    assert plain[0].section != "Treatment" and "Treatment" in [p.section for p in plain]
    assert [p.chunk_id for p in base.search(query, k=8)] == [p.chunk_id for p in plain]  # no head stored

    _always("Treatment").save()
    boosted = base.search(query, k=8)
    assert boosted[0].section == "Treatment"
    assert sorted(p.chunk_id for p in boosted) == sorted(p.chunk_id for p in plain)
    assert [p.chunk_id for p in base.search(query, k=8, rerank=False)] == [p.chunk_id for p in plain]


def test_fit_intent_command_saves_a_head_and_reports_the_split(tmp_path, capsys):
    from tests.unit.test_kb_cli import run

    emb = HashingEmbedder(48, id="intent-cli-48")
    get_embedder(emb)
    KnowledgeBase.build([DOCS], "n", embedder=emb)
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps({"id": t.id, "question": t.question, "source": t.source,
                                               "section": t.section, "facts": ["x"]}) for t in TRAINING))
    out = tmp_path / "head.safetensors"
    assert run("kb", "fit-intent", "--kb", "n", "--questions", str(questions), "--out", str(out), "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["saved"] == str(out) and {"Treatment", "Diagnosis", "Overview"} <= set(result["classes"])
    assert result["test"]["questions"] == 0  # every condition here hashes to the train split
    assert section_intent.load(out).meta["questions"] == str(len(TRAINING))


def test_the_shipped_head_was_fitted_on_todays_grounded_train_split():
    head = section_intent.load()
    assert head is not None, "kb/data/section_intent.safetensors is missing: run `medchat kb fit-intent`"
    train = [t for t in select(load_questions(), "train") if t.covered and t.section]
    assert head.meta["questions_sha256"] == section_intent.questions_digest(train), \
        "the grounded questions changed since the head was fitted: run `medchat kb fit-intent`"
    assert set(head.classes) == {"Overview", "Symptoms", "Diagnosis", "Treatment", "Red flags", "When to seek care"}


@pytest.mark.parametrize("question, section", [
    ("how is velmora fever diagnosed?", "Diagnosis"), ("what is velmora fever?", "Overview"),
    ("how do you treat velmora fever", "Treatment"), ("what are the symptoms of velmora fever?", "Symptoms"),
    ("when should i see a doctor about velmora fever?", "When to seek care"),
    ("is velmora fever ever an emergency, what are the danger signs?", "Red flags"),
])
def test_the_shipped_head_reads_the_question_not_the_condition(question, section):
    p = section_intent.load().probabilities(question)
    assert max(p, key=p.get) == section
