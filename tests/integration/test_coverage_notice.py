"""The "not in the knowledge base" notice: put before the answer, in the question's language, exactly
when no retrieved passage is similar enough; never when the KB is off; counted as an abstention."""

from __future__ import annotations

import pytest
from tests.support.fake_engine import FakeEngine

from kb.knowledge import Passage
from medchat.app import coverage
from medchat.app.evaluation.grounded_metrics import abstains
from medchat.app.history.store import HistoryStore
from medchat.app.session import ChatSession
from medchat.core.profiles import ProfileStore


def passage(similarity: float, named: bool = False) -> Passage:
    return Passage(text="Shingles is treated with antivirals.", source="shingles.md", title="Shingles",
                   section="Treatment", score=0.1, chunk_id="c1", similarity=similarity, named=named)


def test_notice_follows_the_best_passage_similarity_and_the_question_language():
    edge = coverage.COVERED_MIN_SIMILARITY
    assert coverage.notice("How is shingles treated?", [passage(edge - 0.1), passage(edge)]) == ""
    assert coverage.notice("How is shingles treated?", [passage(edge - 0.01)]) == coverage.NOTICE["en"]
    assert coverage.notice("How is shingles treated?", []) == coverage.NOTICE["en"]
    assert coverage.notice("带状疱疹怎么治疗？", [passage(0.2)]) == coverage.NOTICE["zh"]
    # a passage about the condition the question names covers it, however low MiniLM scores it
    assert coverage.notice("How is shingles treated?", [passage(0.2, named=True)]) == ""


def test_the_english_notice_counts_as_an_abstention_in_the_grounded_evaluation():
    assert abstains(coverage.NOTICE["en"])


def _session(tmp_path, sims, kb="default"):
    history = HistoryStore(tmp_path / "h.db")
    session = ChatSession(FakeEngine(ProfileStore(), reply=lambda p, q: "Rest and fluids."), history=history, kb=kb,
                          triage=lambda text: None, key_facts=False)
    session.retrieve = lambda text: [passage(s) for s in sims]  # the KB's own retrieval, with chosen scores
    return session, history


def test_an_uncovered_question_gets_the_notice_first_in_the_stream_and_in_history(tmp_path):
    session, history = _session(tmp_path, [0.3])
    events = list(session.send("Can I take my cat's antibiotics?"))
    chunks = [e.text for e in events if e.kind == "chunk"]
    done = [e for e in events if e.kind == "done"][0]
    assert chunks[0] == coverage.NOTICE["en"]
    assert done.text == coverage.NOTICE["en"] + "Rest and fluids."
    assert session.engine.calls[-1]["lead"] == ""  # no KB sentence is put first when the KB does not cover it
    stored = [m["content"] for m in history.messages(session.conversation_id) if m["role"] == "assistant"]
    assert stored == [done.text]


def test_a_covered_question_and_a_session_without_the_kb_get_no_notice(tmp_path):
    session, _ = _session(tmp_path, [0.3, 0.7])
    done = [e for e in session.send("How is shingles treated?") if e.kind == "done"][0]
    # covered: the reply starts with the KB's best sentence, verbatim and cited (chat.kb_lead)
    assert session.last_lead == "Shingles is treated with antivirals [1]."
    assert done.text == session.last_lead + " Rest and fluids."
    off, _ = _session(tmp_path / "off", [], kb=None)
    done = [e for e in off.send("How is shingles treated?") if e.kind == "done"][0]
    assert done.text == "Rest and fluids."


VOCAB = frozenset({"shingles", "treated", "antivirals", "sarcoidosis", "treatment", "ringworm"})


@pytest.mark.skipif(not coverage._common_words(), reason="the default embedder's vocabulary is not installed")
def test_a_rare_term_the_kb_never_mentions_gets_the_notice_despite_close_passages():
    close = [passage(0.9)]
    assert coverage.unknown_terms("what is the treatment for keratoconus?", VOCAB) == ["keratoconus"]
    assert coverage.notice("what is the treatment for keratoconus?", close, VOCAB) == coverage.NOTICE["en"]
    # known to the KB, even misspelt; everyday words (whole words of the embedder's vocabulary); short words
    assert coverage.unknown_terms("how is sarcoidossis treated?", VOCAB) == []
    assert coverage.unknown_terms("which medication helps children breathing?", VOCAB) == []
    assert coverage.unknown_terms("is a zoster rash bad", VOCAB) == []
    assert coverage.notice("how is sarcoidosis treated?", close, VOCAB) == ""
    # no vocabulary (a caller's own retriever): the similarity alone decides
    assert coverage.notice("what is the treatment for keratoconus?", close) == ""
