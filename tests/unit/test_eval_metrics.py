"""ROUGE / BLEU / length metrics of `medchat eval` on hand-checkable pairs."""

from __future__ import annotations

import jieba
import pytest

from medchat.app.evaluation import metrics as M

EN = "The patient has a fever and a dry cough. Drink fluids and rest at home."


def test_identical_strings_score_one():
    r = M.rouge_scores([EN], [EN])[0]
    assert r == pytest.approx({"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0})
    assert M.sentence_bleu([EN], [EN])[0] == pytest.approx(1.0)
    assert M.corpus_bleu([EN, "See a doctor if it gets worse."], [EN, "See a doctor if it gets worse."])["bleu4"] \
        == pytest.approx(1.0)


def test_disjoint_strings_score_low():
    pred, ref = "Influenza spreads quickly in winter", "Take paracetamol as directed on the label."
    r = M.rouge_scores([pred], [ref])[0]
    assert r["rouge1"] == 0.0 and r["rouge2"] == 0.0 and r["rougeL"] == 0.0
    assert M.sentence_bleu([pred], [ref])[0] < 0.01
    assert M.corpus_bleu([pred], [ref])["bleu4"] < 0.01
    # one shared token (the full stop) is not zero, but stays low
    assert 0 < M.sentence_bleu([pred + "."], [ref])[0] < 0.1


def test_partial_overlap_is_between():
    ref = "drink fluids and rest"
    pred = "drink water and sleep"  # unigrams: drink, and shared of 4 each -> ROUGE-1 F = 0.5
    r = M.rouge_scores([pred], [ref])[0]
    assert r["rouge1"] == pytest.approx(0.5)
    assert r["rouge2"] == 0.0


def test_chinese_is_segmented_into_words():
    ref, pred = "我今天发烧了，头也很疼。", "发烧的时候需要多休息。"
    # rouge-score's own tokenizer drops every Chinese character; the eval tokenizer must not
    from rouge_score import tokenize as rouge_tokenize

    assert rouge_tokenize.tokenize(ref, None) == []
    tokens = M.MixedTokenizer().tokenize(ref)
    assert "发烧" in tokens and "，" not in tokens
    # independent check: ROUGE-1 F from jieba's segmentation by hand
    seg = lambda s: [w for w in jieba.lcut(s) if w.strip() and w not in "，。"]  # noqa: E731
    a, b = seg(ref), seg(pred)
    overlap = sum(min(a.count(w), b.count(w)) for w in set(a))
    expected = 2 * overlap / (len(a) + len(b))
    got = M.rouge_scores([pred], [ref])[0]["rouge1"]
    assert got > 0
    assert got == pytest.approx(expected)


def test_chinese_bleu_uses_character_tokens():
    ref = "新冠病毒感染后要多喝水并注意休息"
    assert M.bleu_tokenizer([ref]) == "zh" and M.bleu_tokenizer([EN]) == "13a"
    assert M.sentence_bleu([ref], [ref])[0] == pytest.approx(1.0)
    partial = M.sentence_bleu(["感染后要多喝水"], [ref])[0]
    assert 0 < partial < 1
    assert M.corpus_bleu(["感染后要多喝水"], [ref])["tokenizer"] == "zh"


def test_length_stats():
    s = M.LengthStats.of([1, 2, 3, 10])
    assert s.mean == pytest.approx(4.0) and s.median == pytest.approx(2.5)
    assert M.LengthStats.of([]).mean == 0.0
