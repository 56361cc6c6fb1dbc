"""Reciprocal rank fusion, the BM25 wrapper and the faiss dense index (flat and HNSW paths)."""

from __future__ import annotations

import numpy as np
import pytest

from kb import index as kbindex
from kb.index import BM25Index, DenseIndex, rrf


# ---------------------------------------------------------------- RRF

def test_rrf_scores_are_sums_of_reciprocal_ranks():
    fused = dict(rrf([["a", "b", "c"], ["c", "a"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)


def test_rrf_rewards_agreement_over_a_single_top_rank():
    dense = ["x", "shared", "d3", "d4"]
    lexical = ["y", "shared", "l3", "l4"]
    order = [key for key, _ in rrf([dense, lexical])]
    assert order[0] == "shared"
    assert set(order[1:3]) == {"x", "y"}
    assert len(order) == 7


def test_rrf_ties_keep_first_seen_order_and_k_matters():
    assert [key for key, _ in rrf([["p", "q"], ["q", "p"]])] == ["p", "q"]
    # with a small k the top rank of one list dominates; with a large k agreement wins
    rankings = [["solo", "both"], ["other", "x1", "x2", "x3", "both"]]
    assert rrf(rankings, k=1)[0][0] == "solo"
    assert rrf(rankings, k=60)[0][0] == "both"


def test_rrf_of_nothing_is_empty():
    assert rrf([[], []]) == []


# ---------------------------------------------------------------- BM25

def test_bm25_ranks_by_term_match_with_stemming():
    texts = ["Asthma inhalers open the airways.", "Coughing at night is common with asthma.",
             "Sunburn needs cool water.", "The the the and of."]
    bm25 = BM25Index.build(texts, keys=[10, 11, 12, 13])
    hits = bm25.search("coughs at night", 5)
    assert [k for k, _ in hits] == [11]  # stemmed: coughs ~ coughing; stopwords never match
    assert bm25.search("asthma", 5)[0][0] in (10, 11) and len(bm25.search("asthma", 5)) == 2
    assert bm25.search("zebra", 5) == [] and bm25.search("the of", 5) == []
    scores = [s for _, s in bm25.search("asthma airways", 5)]
    assert scores == sorted(scores, reverse=True)


def test_bm25_round_trip(tmp_path):
    bm25 = BM25Index.build(["flu fever", "measles rash", "fever rash"], keys=["a", "b", "c"])
    bm25.save(tmp_path)
    again = BM25Index.load(tmp_path, ["a", "b", "c"], bm25.tokenizer)
    assert again.search("rash fever", 3) == bm25.search("rash fever", 3)


def test_bm25_empty_index():
    assert BM25Index.build([], []).search("anything", 5) == []


# ---------------------------------------------------------------- dense

def unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_index_add_search_remove():
    vecs = unit_rows(30)
    dense = DenseIndex(16)
    dense.add(vecs, np.arange(100, 130))
    assert dense.kind == "flat" and len(dense) == 30
    best = dense.search(vecs[7], 3)
    assert best[0][0] == 107 and best[0][1] == pytest.approx(1.0, abs=1e-5)
    dense.remove([107])
    assert 107 not in [i for i, _ in dense.search(vecs[7], 30)] and len(dense) == 29
    assert np.allclose(dense.vectors([108])[0], vecs[8])


def test_hnsw_path_masks_removed_ids_and_compacts(monkeypatch, tmp_path):
    monkeypatch.setattr(kbindex, "HNSW_THRESHOLD", 40)
    vecs = unit_rows(100, seed=1)
    dense = DenseIndex(16)
    dense.add(vecs[:30], np.arange(30))
    assert dense.kind == "flat"
    dense.add(vecs[30:], np.arange(30, 100))
    assert dense.kind == "hnsw" and len(dense) == 100
    assert dense.search(vecs[5], 1)[0][0] == 5

    dense.remove([5, 6])
    assert dense.tombstones == {5, 6} and dense.ntotal == 100 and len(dense) == 98
    found = [i for i, _ in dense.search(vecs[5], 98)]
    assert 5 not in found and 6 not in found and len(found) > 50

    # persisted tombstones come back as tombstones (their chunks are gone from the store)
    dense.save(tmp_path / "d.faiss")
    live = [i for i in range(100) if i not in (5, 6)]
    again = DenseIndex.load(tmp_path / "d.faiss", 16, live)
    assert again.kind == "hnsw" and again.tombstones == {5, 6}
    assert 5 not in [i for i, _ in again.search(vecs[5], 10)]

    # past the compaction fraction the graph is rebuilt from live vectors only
    again.remove(range(10, 40))
    assert not again.tombstones and again.ntotal == 68
    assert again.kind == "hnsw"
    assert again.search(vecs[50], 1)[0][0] == 50


def test_dimension_mismatch_is_refused():
    with pytest.raises(ValueError):
        DenseIndex(16).add(unit_rows(2, dim=8), [1, 2])
