"""The two retrievers behind a KB and how their rankings are fused.

- `DenseIndex`: faiss over normalised vectors (inner product = cosine). Exact `IndexFlatIP` while
  small; an HNSW graph above `HNSW_THRESHOLD` vectors. Both sit in an `IndexIDMap2`, so vectors carry
  our own int64 ids and can be reconstructed by id. HNSW cannot delete in place: removed ids become
  tombstones, masked out of every search by an id selector, and the graph is rebuilt from the live
  vectors once tombstones pass `COMPACT_FRACTION` of it.
- `BM25Index`: bm25s over lower-cased, stop-worded, Snowball-stemmed words (stemming is used when
  nltk is importable; the tokenizer name is recorded so a KB is never queried with another one).
- `rrf`: reciprocal rank fusion.

faiss, numpy and bm25s are imported inside functions so `import kb` stays cheap.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

HNSW_THRESHOLD = 20_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 256  # ~0.4 ms per query at 50k; 128 lost recall on tightly clustered vectors
COMPACT_FRACTION = 0.25
RRF_K = 60


def rrf(rankings: list[list], k: int = RRF_K) -> list[tuple[object, float]]:
    """Fuse best-first rankings: score(d) = sum over rankings of 1 / (k + rank), rank from 1.

    Ties keep the order in which items were first seen (earlier rankings first), so results are
    deterministic.
    """
    scores: dict[object, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, 1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    order = {key: i for i, key in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


class DenseIndex:
    def __init__(self, dim: int, index=None):
        import faiss

        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.tombstones: set[int] = set()
        self._selector = None
        self._inspect()

    def _inspect(self) -> None:
        import faiss

        # `self.index` owns the inner index; this wrapper only borrows it, so keep it no longer
        inner = faiss.downcast_index(self.index.index)
        self.kind = "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"
        if self.kind == "hnsw":
            inner.hnsw.efSearch = HNSW_EF_SEARCH

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def __len__(self) -> int:
        return self.ntotal - len(self.tombstones)

    def ids(self):
        import faiss

        return faiss.vector_to_array(self.index.id_map)

    def add(self, vectors, ids) -> None:
        import numpy as np

        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype="float32")
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, index has {self.dim}")
        self.index.add_with_ids(vectors, np.asarray(ids, dtype="int64"))
        if self.kind == "flat" and len(self) > HNSW_THRESHOLD:
            self._rebuild()

    def remove(self, ids) -> None:
        import numpy as np

        ids = [int(i) for i in ids]
        if not ids:
            return
        if self.kind == "flat":
            self.index.remove_ids(np.asarray(ids, dtype="int64"))
            return
        self.tombstones.update(ids)
        self._selector = None
        if len(self.tombstones) > COMPACT_FRACTION * self.ntotal:
            self._rebuild()

    def _rebuild(self) -> None:
        """Re-create the index from the live vectors, choosing flat or HNSW by size."""
        import faiss
        import numpy as np

        ids = np.array([i for i in self.ids() if int(i) not in self.tombstones], dtype="int64")
        vectors = self.index.reconstruct_batch(ids) if len(ids) else np.zeros((0, self.dim), "float32")
        if len(ids) > HNSW_THRESHOLD:
            inner = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            inner = faiss.IndexFlatIP(self.dim)
        self.index = faiss.IndexIDMap2(inner)
        self.tombstones, self._selector = set(), None
        self._inspect()
        if len(ids):
            self.index.add_with_ids(vectors, ids)

    def vectors(self, ids):
        import numpy as np

        return self.index.reconstruct_batch(np.asarray(ids, dtype="int64"))

    def search(self, query_vector, n: int) -> list[tuple[int, float]]:
        """Best-first (id, cosine) pairs, removed ids never included."""
        import faiss
        import numpy as np

        n = min(n, len(self))
        if n <= 0:
            return []
        q = np.ascontiguousarray(query_vector, dtype="float32").reshape(1, -1)
        params = None
        if self.kind == "hnsw":
            if self.tombstones and self._selector is None:
                self._selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.array(sorted(self.tombstones), dtype="int64")))
            params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, n), sel=self._selector)
        # One query is faster on one thread than split across cores (measured: 2.6 vs 5.1 ms at 50k).
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = self.index.search(q, n, params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def save(self, path: Path) -> None:
        import faiss

        # tombstoned vectors are saved too; `load` masks them again (they are not in the chunk store)
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, dim: int, live_ids) -> "DenseIndex":
        """Ids in the file that are not live (removed in an earlier session) become tombstones."""
        import faiss

        index = faiss.read_index(str(path))
        if index.d != dim:
            raise ValueError(f"index dimension {index.d} does not match the manifest ({dim})")
        if not isinstance(index, faiss.IndexIDMap2):  # read_index returns the concrete, owning type
            raise ValueError("the index file is not an id-mapped faiss index")
        dense = cls(dim, index)
        live = set(int(i) for i in live_ids)
        stale = [int(i) for i in dense.ids() if int(i) not in live]
        if stale:
            dense.remove(stale)
        return dense


# ---------------------------------------------------------------- BM25

_WORD = re.compile(r"\w+", re.UNICODE)


@functools.lru_cache(maxsize=1)
def _stemmer():
    try:
        from nltk.stem.snowball import SnowballStemmer
    except ImportError:  # nltk arrives with rouge-score; without it BM25 simply matches whole words
        return None
    stem = SnowballStemmer("english").stem
    return functools.lru_cache(maxsize=200_000)(stem)


def tokenizer_name() -> str:
    return "words-en-snowball" if _stemmer() is not None else "words-en"


@functools.lru_cache(maxsize=1)
def _stopwords() -> frozenset:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    stem, stop = _stemmer(), _stopwords()
    words = [w for w in _WORD.findall(text.lower()) if w not in stop]
    return [stem(w) for w in words] if stem else words


class BM25Index:
    """Row i of the index is position i of the `keys` list it was built with."""

    def __init__(self, retriever, keys: list, tokenizer: str):
        self.retriever, self.keys, self.tokenizer = retriever, list(keys), tokenizer

    @classmethod
    def build(cls, texts: list[str], keys: list) -> "BM25Index":
        import bm25s

        retriever = None
        if texts:
            retriever = bm25s.BM25()
            retriever.index([tokenize(t) for t in texts], show_progress=False)
        return cls(retriever, keys, tokenizer_name())

    def search(self, query: str, n: int) -> list[tuple[object, float]]:
        """Best-first (key, score) pairs for documents sharing at least one term with the query."""
        import numpy as np

        if self.retriever is None or n <= 0:
            return []
        tokens = tokenize(query)
        if not tokens:
            return []
        scores = self.retriever.get_scores(tokens)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > n:
            hits = hits[np.argpartition(-scores[hits], n - 1)[:n]]
        hits = hits[np.argsort(-scores[hits], kind="stable")]
        return [(self.keys[i], float(scores[i])) for i in hits]

    def save(self, folder: Path) -> None:
        if self.retriever is not None:
            self.retriever.save(str(folder))

    @classmethod
    def load(cls, folder: Path, keys: list, tokenizer: str) -> "BM25Index":
        import bm25s

        retriever = bm25s.BM25.load(str(folder), mmap=False) if keys else None
        return cls(retriever, keys, tokenizer)
