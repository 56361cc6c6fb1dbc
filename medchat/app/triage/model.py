"""The learned triage model: linear heads over idf-weighted hashed n-grams (`features.py`). Three heads
share the features: emergency vs ordinary (binary), self-harm vs everything else (binary, so its
threshold can be set lower), and the emergency category (a score per category, read through a softmax).
All are linear SVMs whose margins are mapped to probabilities by a fitted sigmoid or softmax
temperature (`build.py`), folded into the stored weights, so every head is read as plain logits here.
For English messages the probabilities are averaged with a fine-tuned sentence encoder's (`encoder.py`),
which reads severity in wording the n-grams never saw. (A frozen-embedding head was tried first and dropped: embeddings group
messages by topic, while triage turns on severity; fine-tuning is what teaches it severity.)

Weights ship as `data/model.safetensors` (plain arrays, no pickle) with `data/model.json` (classes,
thresholds, corpus hash) and `data/encoder.safetensors`. Only n-gram columns seen in training carry
weight, so only those (and their idf) are stored. `medchat triage --rebuild` refits them from the
corpus (`build.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medchat.core.errors import UserError
from medchat.app.triage import features
from medchat.app.triage.text import detect_language

DATA_DIR = Path(__file__).resolve().parent / "data"
HEADS = ("emergency", "self_harm")  # the first two weight columns; the categories follow


@dataclass
class Prediction:
    score: float  # probability that the message is an emergency
    self_harm: float  # probability that it reports self-harm or suicidal intent
    category: str  # most likely emergency category (even when the score is low)
    category_p: float


class TriageModel:
    def __init__(self, classes: list[str], cols: np.ndarray, idf: np.ndarray, weights: np.ndarray,
                 bias: np.ndarray, meta: dict, encoder=None):
        self.classes = classes  # the emergency categories, in weight-column order after HEADS
        self.cols, self.weights, self.bias = cols, weights.astype(np.float32), bias.astype(np.float32)
        self.idf = idf.astype(np.float32)  # of each stored column; meta["idf_unseen"] for any other
        self.meta = meta
        self.encoder = encoder  # a TriageEncoder, or None (n-grams alone)
        self._example_vecs: dict = {}

    @classmethod
    def load(cls, folder: Path | None = None) -> "TriageModel":
        from safetensors.numpy import load_file

        folder = Path(folder or DATA_DIR)
        try:
            meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
            arrays = load_file(str(folder / "model.safetensors"))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load the triage model from {folder} ({exc}); rebuild it with "
                            "`medchat triage build`") from exc
        from medchat.app.triage.encoder import TriageEncoder

        encoder = TriageEncoder.load(folder, meta.get("encoder"))
        return cls(meta["classes"], arrays["ngram_cols"], arrays["ngram_idf"], arrays["ngram_w"], arrays["ngram_b"],
                   meta, encoder)

    def threshold(self, language: str) -> float:
        return float(self.meta["thresholds"].get(language, self.meta["thresholds"]["en"]))

    def _ngram_logits(self, norm: str) -> np.ndarray:
        """As `features.weighted` rows: grams never seen in training carry no weight but count in the norm."""
        idx = features.columns(norm)
        pos = np.minimum(np.searchsorted(self.cols, idx), len(self.cols) - 1)
        known = self.cols[pos] == idx
        val = self.idf[pos[known]]
        length = np.sqrt(float(val @ val) + (idx.size - int(known.sum())) * float(self.meta["idf_unseen"]) ** 2)
        if length == 0:
            return self.bias.copy()
        return (val / length) @ self.weights[pos[known]] + self.bias

    def probabilities(self, norm: str) -> np.ndarray:
        """[P(emergency), P(self-harm), P(category | emergency)...] for normalised text: the n-gram heads,
        averaged with the encoder's for the languages it was fitted for, on messages long enough for it."""
        p = heads_to_probabilities(self._ngram_logits(norm))
        enc = self.encoder
        if enc is not None and detect_language(norm) in enc.languages and len(norm.split()) >= enc.min_words:
            p = (1 - enc.weight) * p + enc.weight * enc.probabilities(norm)
        return p

    def neighbours(self, text: str, category: str, k: int = 2) -> list[str]:
        """The training emergencies of `category` nearest to the message (n-gram cosine), for display."""
        from medchat.app.triage.text import normalize

        examples = [e for e in self.meta.get("examples", []) if e["category"] == category]
        if not examples:
            return []
        if category not in self._example_vecs:
            self._example_vecs[category] = features.matrix([normalize(e["text"]) for e in examples])
        idx, val = features.hashed(normalize(text))
        sims = self._example_vecs[category][:, idx] @ val
        return [examples[i]["text"] for i in np.argsort(-sims)[:k]]

    def predict(self, norm: str) -> Prediction:
        p = self.probabilities(norm)
        cats = p[len(HEADS):]
        best = int(cats.argmax())
        return Prediction(score=float(p[0]), self_harm=float(p[1]), category=self.classes[best],
                          category_p=float(cats[best]))


def heads_to_probabilities(z: np.ndarray) -> np.ndarray:
    """Head logits -> [sigmoid of the binary heads, softmax over the categories]."""
    binary = 1.0 / (1.0 + np.exp(-z[:len(HEADS)]))
    cats = np.exp(z[len(HEADS):] - z[len(HEADS):].max())
    return np.concatenate([binary, cats / cats.sum()])
