"""Key facts: verbatim sentences of the retrieved passages, picked by the embedder, never written."""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import pytest

from tests.support.fake_engine import FakeEngine, install_fake_profiles  # noqa: E402

from kb.key_facts import (FEATURES, LIMIT, LINES_HEADER, MARGIN, MIN_SIMILARITY, PROMPT_LIMIT,  # noqa: E402
                          format_block, format_lines, lead_line, load_ranker, rank_features, rank_score, ranked,
                          shown, split_sentences)
from tests.support.hashing_embedder import HashingEmbedder  # noqa: E402
from medchat.app.commands import REGISTRY  # noqa: E402
from medchat.core.profiles import ProfileStore  # noqa: E402
from medchat.app.repl import Repl  # noqa: E402
from medchat.app.context import citation_footer  # noqa: E402
from medchat.app.session import ChatSession  # noqa: E402


def reader_block(question, passages, embedder):
    """The reader's block, as the session picks it from the prompt's list."""
    return shown(ranked(question, passages, embedder))


# a bag-of-words embedder: a sentence sharing the question's words scores high, others near 0
EMBEDDER = HashingEmbedder(dim=512)


def passage(text, source, title, section=""):
    return SimpleNamespace(text=text, source=source, title=title, section=section, score=0.5)


PASSAGES = [
    passage("This invented illness exists only in stories. It is spread by the quellin mite on Tarsk. "
            "Velmora fever is treated with kelvaran bark tea, taken twice a day for fourteen days.",
            "velmora-fever.md", "Velmora Fever", "Overview"),
    passage("- Rest in a cool room\n- Drink plenty of water\n- The lantern test confirms the illness, "
            "e.g. a drop of saliva turns green under blue light.", "velmora-fever.md", "Velmora Fever", "Care"),
    passage("Asthma makes the airways narrow. A blue reliever inhaler opens them within minutes.",
            "asthma.md", "Asthma", "Treatment"),
]


@pytest.mark.parametrize("text, expected", [
    ("Take it e.g. twice daily. Dr. Smith agreed! Is 2.5 mg enough? Yes.",
     ["Take it e.g. twice daily.", "Dr. Smith agreed!", "Is 2.5 mg enough?", "Yes."]),
    ("- Usually no symptoms - Sometimes a pulsing feeling near the navel",  # a list as chunking joins it
     ["Usually no symptoms", "Sometimes a pulsing feeling near the navel"]),
    ("# Care\nIntro line\n- first item\n* second item\n1. numbered item\n\nA sentence that wraps\nover lines. "
     'He said "stop." Then left.',
     ["Intro line", "first item", "second item", "numbered item", "A sentence that wraps\nover lines.",
      'He said "stop."', "Then left."]),
    ("发烧时多喝水。休息很重要！需要看医生吗？", ["发烧时多喝水。", "休息很重要！", "需要看医生吗？"]),
    ("Risk rises with age over 65. Smoking adds to it.", ["Risk rises with age over 65.", "Smoking adds to it."]),
])
def test_split_sentences_are_exact_substrings(text, expected):
    got = split_sentences(text)
    assert got == expected
    assert all(s in text for s in got)


def test_block_picks_the_sentence_that_holds_the_fact():
    facts = reader_block("What is velmora fever treated with?", PASSAGES, EMBEDDER)
    assert facts, "the treatment sentence shares the question's words"
    best = facts[0]
    assert best.sentence == ("Velmora fever is treated with kelvaran bark tea, taken twice a day for "
                             "fourteen days.")
    assert (best.n, best.source, best.title, best.section) == (1, "velmora-fever.md", "Velmora Fever", "Overview")
    assert 1 <= len(facts) <= 3
    assert all(f.sentence in PASSAGES[f.n - 1].text for f in facts)  # verbatim, from the cited passage
    assert all(0.35 <= f.score <= 1.0 for f in facts)  # the embedder's cosine, floor included


def test_block_finds_a_bullet_and_keeps_numbering_and_dedupes():
    dup = passage(PASSAGES[1].text, "copy.md", "Copy")  # an overlapping chunk repeats sentences
    facts = reader_block("which test confirms the illness? saliva turns green", [PASSAGES[2], PASSAGES[1], dup],
                          EMBEDDER)
    assert facts[0].n == 2 and facts[0].sentence.startswith("The lantern test confirms the illness, e.g. a drop")
    assert len({f.sentence for f in facts}) == len(facts)
    assert all(f.source != "copy.md" for f in facts)


class FixedEmbedder:
    """Cosines set by hand: each text's vector is looked up by a word it contains."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors

    def encode(self, texts):
        import numpy as np

        out = [next(v for key, v in self.vectors.items() if key in t) for t in texts]
        return np.array([np.array(v) / np.linalg.norm(v) for v in out], dtype=np.float32)


def test_rank_features_read_each_mark_of_a_candidate():
    asked = {"velmora", "fever", "treated"}
    got = dict(zip(FEATURES, rank_features(0.6, 0.7, 1, asked, "Velmora fever is treated (such as tea) 2 times.",
                                           "Red flags")))
    assert got == pytest.approx({"cosine": 0.6, "cosine_query": 0.7, "first_passage": 1.0, "inverse_rank": 1.0,
                                 "question_words": 1.0, "has_digit": 1.0, "has_bracket": 1.0, "names_example": 1.0,
                                 "log_words": math.log(9), "seek_care": 1.0})
    plain = dict(zip(FEATURES, rank_features(0.6, 0.6, 4, set(), "Rest helps.", "Treatment")))
    assert (plain["first_passage"], plain["inverse_rank"], plain["question_words"], plain["has_digit"],
            plain["has_bracket"], plain["names_example"], plain["seek_care"]) == (0.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0)


def test_rank_score_is_the_rankers_log_odds_and_the_shipped_one_prefers_closer_and_earlier():
    ranker = {"features": list(FEATURES), "weights": [2.0] + [0.0] * (len(FEATURES) - 1), "bias": -1.0}
    assert rank_score(rank_features(0.5, 0.1, 3, set(), "x y", ""), ranker) == pytest.approx(0.0)
    shipped = load_ranker()
    assert tuple(shipped["features"]) == FEATURES and shipped["questions"] >= 300
    close, far = (rank_score(rank_features(c, c, 2, set(), "Same words here.", "Treatment")) for c in (0.8, 0.5))
    first, third = (rank_score(rank_features(0.6, 0.6, n, set(), "Same words here.", "Treatment")) for n in (1, 3))
    assert close > far and first > third


def test_a_ranker_fitted_on_other_features_is_refused_with_the_refit_command(tmp_path):
    from medchat.core.errors import UserError

    bad = tmp_path / "ranker.json"
    bad.write_text('{"features": ["cosine"], "weights": [1.0], "bias": 0.0}')
    with pytest.raises(UserError, match="medchat kb fit-ranker"):
        load_ranker(bad)
    with pytest.raises(UserError, match="medchat kb fit-ranker"):
        load_ranker(tmp_path / "missing.json")


def test_block_prefers_the_retrievers_first_passage_on_a_near_tie():
    # by cosine alone passage [2]'s sentence (0.80) beats passage [1]'s (0.75); the retriever put [1]
    # first, and that decides a near tie
    passages = [passage("Alpha holds the answer.", "a.md", "A"), passage("Beta names the condition.", "b.md", "B")]
    vectors = {"Alpha": [0.75, (1 - 0.75 ** 2) ** 0.5, 0.0], "Beta": [0.80, 0.0, (1 - 0.80 ** 2) ** 0.5],
               "zzz": [1.0, 0.0, 0.0]}
    facts = ranked("zzz?", passages, FixedEmbedder(vectors))
    assert [f.n for f in facts] == [1, 2]
    assert facts[0].score == pytest.approx(0.75, abs=1e-5)  # the shown score stays the cosine
    vectors["Alpha"] = [0.30, 0.91 ** 0.5, 0.0]  # under the floor: off-topic, whatever its place
    assert [f.n for f in reader_block("zzz?", passages, FixedEmbedder(vectors))] == [2]


def test_a_follow_up_lists_the_lines_its_search_query_finds():
    # "and after that?" alone matches nothing; with the earlier question (the turn's query) it does
    passages = [passage("Alpha holds the answer.", "a.md", "A")]
    vectors = {"Alpha": [0.6, 0.8, 0.0], "zzz": [1.0, 0.0, 0.0], "and after": [0.0, 0.0, 1.0]}
    assert ranked("and after that?", passages, FixedEmbedder(vectors)) == []
    lines = ranked("and after that?", passages, FixedEmbedder(vectors), query="zzz and after that?")
    assert [f.n for f in lines] == [1] and lines[0].score == pytest.approx(0.0, abs=1e-5)


def _graded(cosines):
    """Passages of one sentence each ("S0 ...", "S1 ...") whose cosine to the question is set by hand."""
    passages = [passage(f"S{i} holds statement number {i}.", f"s{i}.md", f"S{i}") for i in range(len(cosines))]
    vectors = {f"S{i} ": [c, (1 - c * c) ** 0.5 * (i % 2), (1 - c * c) ** 0.5 * (1 - i % 2)]
               for i, c in enumerate(cosines)}
    vectors["zzz"] = [1.0, 0.0, 0.0]
    return passages, FixedEmbedder(vectors)


def test_ranked_lists_the_best_few_for_the_prompt_and_shown_narrows_them():
    # two more sentences over the floor than PROMPT_LIMIT and one under it (0.2): PROMPT_LIMIT keeps the first
    # few, the reader's block keeps only those within MARGIN of the best
    over = [0.9, 0.88] + [0.5 - 0.01 * i for i in range(PROMPT_LIMIT)]
    passages, embedder = _graded([*over, 0.2])
    lines = ranked("zzz?", passages, embedder)
    assert [f.n for f in lines] == list(range(1, PROMPT_LIMIT + 1))
    best = rank_score(rank_features(0.9, 0.9, 1, set(), lines[0].sentence, ""))
    assert lines[0].rank == pytest.approx(best, abs=1e-4)
    assert [f.n for f in shown(lines)] == [f.n for f in lines if f.rank >= lines[0].rank - MARGIN][:LIMIT]
    assert shown(ranked("zzz?", passages, embedder, limit=LIMIT)) == shown(lines)  # the block ignores PROMPT_LIMIT
    assert [f.n for f in ranked("zzz?", passages, embedder, limit=20)] == list(range(1, len(over) + 1))  # 0.2: off-topic
    assert all(f.score >= MIN_SIMILARITY for f in lines)
    assert shown([]) == []


def test_format_lines_lists_each_sentence_under_its_number_and_source():
    lines = ranked("What is velmora fever treated with?", PASSAGES, EMBEDDER)
    text = format_lines(lines)
    assert text.splitlines()[0] == LINES_HEADER and len(text.splitlines()) == len(lines) + 1
    assert f"[1] (Velmora Fever — Overview) {lines[0].sentence}" in text
    assert format_lines([]) == ""


def test_the_prompt_lists_the_key_lines_even_when_the_block_is_off():
    engine = FakeEngine(install_fake_profiles(ProfileStore()))
    off = ChatSession(engine, kb="default", triage=lambda t: None, retriever=lambda q: PASSAGES,
                      embedder=EMBEDDER, key_facts=False)
    done(off, "What is velmora fever treated with?")
    user = engine.calls[-1]["messages"][-1]["content"]
    context, question = user.split("\n\nQuestion: ")
    assert question == "What is velmora fever treated with?"
    passages_part, lines_part = context.split("\n\n" + LINES_HEADER + "\n")
    assert "kelvaran bark tea, taken twice a day for fourteen days." in lines_part.splitlines()[0]
    assert passages_part.count("\n[") == len(PASSAGES)  # every passage first, then the lines
    # earlier turns stay plain: the next turn's prompt carries the lines of the new question only
    done(off, "How is it spread?")
    second = engine.calls[-1]["messages"]
    assert second[1]["content"] == "What is velmora fever treated with?"
    assert second[-1]["content"].count(LINES_HEADER) == 1


def test_a_follow_up_turn_ranks_with_the_query_it_searched_with():
    # the chat searches a follow-up with the earlier question (kb.turn_query); its lines must come from there too
    engine = FakeEngine(install_fake_profiles(ProfileStore()))
    passages = [passage("Alpha holds the answer.", "a.md", "A")]
    embedder = FixedEmbedder({"Alpha": [0.6, 0.8, 0.0], "zzz": [1.0, 0.0, 0.0], "and after": [0.0, 0.0, 1.0]})
    chat = ChatSession(engine, kb="default", triage=lambda t: None, retriever=lambda q: passages, embedder=embedder)
    assert done(chat, "zzz first question").key_facts
    assert [f.sentence for f in done(chat, "and after that?").key_facts] == ["Alpha holds the answer."]
    assert LINES_HEADER in engine.calls[-1]["messages"][-1]["content"]


def test_block_gives_nothing_off_topic_or_empty():
    assert reader_block("how do I bake sourdough bread?", PASSAGES, EMBEDDER) == []
    assert reader_block("velmora fever", [], EMBEDDER) == []
    assert reader_block("", PASSAGES, EMBEDDER) == []


def test_format_block_quotes_with_number_and_source():
    facts = reader_block("What is velmora fever treated with?", PASSAGES, EMBEDDER)
    block = format_block(facts)
    assert block.startswith("From the knowledge base:")
    assert f"[1] “{facts[0].sentence}” (Velmora Fever — Overview, velmora-fever.md)" in block
    assert format_block([]) == ""


@pytest.fixture
def session():
    engine = FakeEngine(install_fake_profiles(ProfileStore()))
    return ChatSession(engine, history=None, kb="default", triage=lambda t: None,
                       retriever=lambda q: PASSAGES, embedder=EMBEDDER)


def done(session, text):
    return [e for e in session.send(text) if e.kind == "done"][0]


def test_session_puts_key_facts_on_done_and_facts_command_toggles(session):
    ev = done(session, "What is velmora fever treated with?")
    assert ev.key_facts and ev.key_facts[0].n == 1 and session.last_key_facts == ev.key_facts
    assert REGISTRY.run(session, "/facts off").text == "key facts: off"
    assert done(session, "What is velmora fever treated with?").key_facts == []
    assert REGISTRY.run(session, "/facts").text == "key facts: off"
    assert REGISTRY.run(session, "/facts on").text == "key facts: on"
    assert done(session, "What is velmora fever treated with?").key_facts
    assert REGISTRY.run(session, "/facts maybe").kind == "error"
    assert "on" in REGISTRY.complete(session, "/facts o")[0]


def test_a_covered_reply_starts_with_the_best_sentence_verbatim_unless_turned_off(session):
    question = "What is velmora fever treated with?"
    best = ranked(question, PASSAGES, EMBEDDER)[0]
    want = f"{best.sentence.rstrip('.')} [{best.n}]."
    assert lead_line([best]) == want and lead_line([]) == ""
    ev = done(session, question)
    assert session.engine.calls[-1]["lead"] == want == session.last_lead and ev.text.startswith(want)
    session.clear()  # a new conversation, not a follow-up searched with the question before
    done(session, "how do I bake sourdough bread?")  # nothing passes the floor: the model writes it all
    assert session.engine.calls[-1]["lead"] == "" == session.last_lead
    off = ChatSession(session.engine, kb="default", triage=lambda t: None, retriever=lambda q: PASSAGES,
                      embedder=EMBEDDER, lead=False)
    done(off, question)
    assert session.engine.calls[-1]["lead"] == ""


def test_setting_off_and_no_embedder_give_none():
    engine = FakeEngine(install_fake_profiles(ProfileStore()))
    off = ChatSession(engine, kb="default", triage=lambda t: None, retriever=lambda q: PASSAGES,
                      embedder=EMBEDDER, key_facts=False)
    assert done(off, "What is velmora fever treated with?").key_facts == []
    # a custom retriever without an embedder: no way to score sentences on the KB's scale
    plain = ChatSession(engine, kb="default", triage=lambda t: None, retriever=lambda q: PASSAGES)
    assert done(plain, "What is velmora fever treated with?").key_facts == []


def test_repl_prints_block_after_footer_and_facts_off_hides_it(session):
    out = io.StringIO()
    question = "What is velmora fever treated with?"
    Repl(session, tty=False, stdin=io.StringIO(f"{question}\n/facts off\n{question}\n"), out=out).run()
    text = out.getvalue()
    footer = citation_footer(PASSAGES)
    first, second = text.split("key facts: off")
    assert first.index(footer) < first.index("From the knowledge base:")
    assert "“Velmora fever is treated with kelvaran bark tea" in first
    assert footer in second and "From the knowledge base:" not in second
