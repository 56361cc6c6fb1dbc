"""Grounded-answer eval without a model: metric arithmetic, regexes, the split, the chat turn with a fake engine."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from kb.grounded import DEFAULT_FILE, GroundedQuestion, load_questions, select, split_of
from medchat.core.errors import UserError
from medchat.core.engine.protocol import GenerationStats
from medchat.app.evaluation import grounded_metrics as GM

Q = GroundedQuestion(id="q1", question="How is velmora fever treated?", source="velmora-fever.md",
                     section="Treatment", facts=("kelvaran", "bark tea"))
U = GroundedQuestion(id="u1", question="How often should I deworm my puppy?", covered=False)
P_FACT = "The fictional cure is a fourteen-day course of kelvaran bark tea, taken twice a day."
P_OTHER = "Velmora fever is spread by the bite of the quellin mite."


def _row(q, answer, passages):
    return {"covered": q.covered, **GM.score_answer(q, answer, passages)}


def test_metric_arithmetic_on_hand_made_predictions():
    rows = [
        _row(Q, "It is treated with kelvaran bark tea for two weeks [1].", [P_FACT, P_OTHER]),  # fact, right cite
        _row(Q, "Drink kelvaran bark tea [2].", [P_FACT, P_OTHER]),  # right fact, wrong citation
        _row(Q, "Rest and fluids usually help.", [P_FACT, P_OTHER]),  # no fact, no citation
        _row(U, "The passages don't cover deworming; please ask your vet.", []),  # correct abstention
        _row(U, "Deworm every 2 weeks until 12 weeks old.", []),  # wrong: answers instead of abstaining
    ]
    assert [r["hit"] for r in rows[:3]] == [True, True, False]
    assert [r["citation_ok"] for r in rows[:3]] == [True, False, False]
    assert [r["cited"] for r in rows[:3]] == [[1], [2], []]
    assert [r["abstained"] for r in rows] == [False, False, False, True, False]
    assert rows[4]["unsupported"] == ["2 weeks", "12 weeks"]
    m = GM.aggregate(rows)
    assert m["fact_hit_rate"] == pytest.approx(2 / 3)
    assert m["citation_accuracy"] == pytest.approx(1 / 2) and m["citing"] == 2
    assert m["no_citation_rate"] == pytest.approx(1 / 3)
    assert m["abstention_rate"] == pytest.approx(1 / 2)
    assert m["false_abstention_rate"] == 0.0
    assert m["unsupported_rate"] == pytest.approx(1 / 5)
    assert m["retrieval_fact_rate"] == 1.0 and (m["covered"], m["uncovered"]) == (3, 2)
    words = [len(a.split()) for a in ("It is treated with kelvaran bark tea for two weeks [1].",
                                      "Drink kelvaran bark tea [2].", "Rest and fluids usually help.",
                                      "The passages don't cover deworming; please ask your vet.",
                                      "Deworm every 2 weeks until 12 weeks old.")]
    assert m["words_mean"] == pytest.approx(sum(words) / 5)


def test_the_model_fact_hit_leaves_out_the_given_lead_sentence():
    lead = "The fictional cure is a fourteen-day course of kelvaran bark tea, taken twice a day [1]."
    echoed = GM.score_answer(Q, f"{lead} Rest helps too [2].", [P_FACT, P_OTHER], lead=lead)
    restated = GM.score_answer(Q, f"{lead} Drink the bark tea twice a day [1].", [P_FACT, P_OTHER], lead=lead)
    unled = GM.score_answer(Q, "Drink kelvaran bark tea [1].", [P_FACT, P_OTHER])
    assert (echoed["hit"], echoed["model_hit"]) == (True, False)
    assert (restated["hit"], restated["model_hit"]) == (True, True)
    assert (unled["hit"], unled["model_hit"]) == (True, True)
    m = GM.aggregate([{"covered": True, **r} for r in (echoed, restated, unled)])
    assert (m["fact_hit_rate"], m["model_fact_hit_rate"]) == (1.0, pytest.approx(2 / 3))


def test_key_fact_hit_reads_the_quoted_block_not_the_answer():
    miss = GM.score_answer(Q, "Rest and fluids usually help.", [P_FACT, P_OTHER], key_fact_texts=[P_FACT])
    wrong_block = GM.score_answer(Q, "Drink kelvaran bark tea [1].", [P_FACT, P_OTHER], key_fact_texts=[P_OTHER])
    assert (miss["hit"], miss["key_fact_hit"]) == (False, True)
    assert (wrong_block["hit"], wrong_block["key_fact_hit"]) == (True, False)
    assert GM.score_answer(Q, "x", [P_FACT])["key_fact_hit"] is False  # no block shown (key facts off)
    m = GM.aggregate([{"covered": True, **miss}, {"covered": True, **wrong_block}, {"covered": False,
                      **GM.score_answer(U, "no idea", [], key_fact_texts=["kelvaran"])}])
    assert m["key_fact_hit_rate"] == pytest.approx(1 / 2)


def test_citation_edge_cases():
    assert GM.citations("see [1, 3] and [2][3]") == [1, 3, 2]
    assert not _row(Q, "Kelvaran bark tea [5].", [P_FACT])["citation_ok"]  # out of range cites nothing real
    assert _row(Q, "Rest [2][1].", [P_FACT, P_OTHER])["citation_ok"]  # SOME cited passage has the fact
    assert GM.aggregate([_row(Q, "no cites", [P_FACT])])["citation_accuracy"] is None


@pytest.mark.parametrize("text, expected", [
    ("I don't know; please see a doctor.", True),
    ("The reference passages do not mention myasthenia gravis. A neurologist can advise you.", True),
    ("This is not covered in the knowledge base, so please talk to your GP.", True),
    ("There is no information in the passages about that; a pharmacist can help.", True),
    ("I don't know.", False),  # no clinician suggested
    ("See a doctor if it gets worse.", False),  # answers, does not say it lacks the information
])
def test_abstention_needs_both_parts(text, expected):
    assert GM.abstains(text) is expected


def test_unsupported_specifics():
    passages = ["Take paracetamol 500 mg up to 4 times a day. An ultrasound confirms it."]
    got = GM.unsupported_specifics("Take 500 mg paracetamol or 400mg ibuprofen; an MRI or ultrasound helps.", passages)
    assert got == ["400mg", "ibuprofen", "mri"]
    assert GM.unsupported_specifics("Usually 12 weeks.", ["It takes 6-12 weeks."]) == []
    assert GM.unsupported_specifics("Usually 6-12 weeks.", ["It takes 12 weeks."]) == ["6-12 weeks"]


def test_split_is_by_condition_and_stable():
    qs = load_questions()
    assert len(qs) > 400 and any(not q.covered for q in qs)
    by_source: dict[str, set] = {}
    for q in qs:
        if q.covered:
            by_source.setdefault(q.source, set()).add(q.split)
    assert all(len(s) == 1 for s in by_source.values()), "a condition crosses splits"
    share = sum(s == {"test"} for s in by_source.values()) / len(by_source)
    assert 0.2 < share < 0.4
    assert all(q.split == split_of(q.id) for q in qs if not q.covered)
    test, train = select(qs, "test"), select(qs, "train")
    assert {q.id for q in test}.isdisjoint(q.id for q in train) and len(test) + len(train) == len(qs)
    assert {q.source for q in test if q.covered}.isdisjoint(q.source for q in train if q.covered)
    short = select(qs, "test", limit=2)
    assert sum(q.covered for q in short) == 2 and sum(not q.covered for q in short) == 2


def test_loader_errors(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text(json.dumps({"id": "a", "question": "x?", "source": "s.md", "facts": []}) + "\n")
    with pytest.raises(UserError, match=r"q.jsonl:1: a covered row needs"):
        load_questions(bad)
    bad.write_text(json.dumps({"id": "a", "question": "x?", "covered": False}) + "\n{oops\n")
    with pytest.raises(UserError, match=r"q.jsonl:2: not JSON"):
        load_questions(bad)
    with pytest.raises(UserError, match="--split"):
        select(load_questions(DEFAULT_FILE), "dev")


class FakeEngine:
    """Replies with the newest user turn it was shown (so the test sees the prompt), like engine.stream."""

    def __init__(self):
        self.profile = SimpleNamespace(name="base", system_prompt=None, generation={"temperature": 0.7}, chain=())
        self.seen = []

    def stream(self, msgs, settings, cancel=None, lead=""):
        self.seen.append((msgs, settings))
        text = (lead + " " if lead else "") + "Kelvaran bark tea [1]."
        yield text
        return GenerationStats(text=text, stop_reason="eos", completion_tokens=5)


def test_follow_up_runs_as_a_chat_turn_after_its_context():
    from medchat.app.evaluation.grounded import CONTEXT_PLACEHOLDER, _row, answer
    from medchat.app.context import KB_HEADER
    from medchat.app.session import ChatSession

    engine = FakeEngine()
    queries = []

    def retriever(query):
        queries.append(query)
        return [SimpleNamespace(text=P_FACT, source="velmora-fever.md", title="Velmora Fever", section="Treatment",
                                score=0.9)]

    session = ChatSession(engine, kb="fx", retriever=retriever, triage=lambda t: None)
    session.set("temperature", 0.0)
    follow = GroundedQuestion(id="q2", question="and for how long?", source="velmora-fever.md",
                              facts=("fourteen-day",), context=("How is velmora fever treated?",))
    raw = answer(session, follow)
    (msgs, settings), = engine.seen  # context turns are not generated by default
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"] == "How is velmora fever treated?" and msgs[2]["content"] == CONTEXT_PLACEHOLDER
    assert KB_HEADER in msgs[3]["content"] and msgs[3]["content"].endswith("Question: and for how long?")
    assert len(queries) == 1 and queries[0].endswith("and for how long?")  # the chat's own retrieval query
    assert settings.temperature == 0.0  # the eval's override beats the profile's own 0.7
    row = _row("base", follow, raw)
    assert row["cited"] == [1] and row["citation_ok"] and not row["hit"] and row["sources"][0]["n"] == 1
    answer(session, follow, context_replies=True)
    assert len(engine.seen) == 3  # the context turn was generated this time
