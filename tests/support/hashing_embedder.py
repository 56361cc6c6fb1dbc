"""A tiny deterministic embedder for tests and model-free experiments (no torch, no download).

Each word (lower-cased, crudely singularised) is hashed to a fixed random direction; a text is the
normalised sum of its words' directions. Texts sharing words are similar, which is enough to
exercise indexing, fusion, persistence and the CLI without loading a real model.
"""

from __future__ import annotations

import hashlib
import re

_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    def __init__(self, dim: int = 64, id: str | None = None):
        self.dim = dim
        self.id = id or f"test-hashing-{dim}"
        self.calls = 0  # texts embedded so far (tests check that unchanged files are not re-embedded)

    def _word_vector(self, word: str):
        import numpy as np

        seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        return np.random.default_rng(seed).standard_normal(self.dim).astype("float32")

    def encode(self, texts, batch_size: int = 64):
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype="float32")
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row] += self._word_vector(word[:-1] if len(word) > 3 and word.endswith("s") else word)
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        self.calls += len(texts)
        return out
