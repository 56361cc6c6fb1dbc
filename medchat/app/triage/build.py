"""`medchat triage build`: refit the shipped triage model from the team corpus.

1. Score every train and dev message with a model fitted on the other folds (family-grouped), then
   choose the thresholds on those out-of-fold scores: the self-harm threshold from its alarm budget,
   then per language the lowest emergency threshold that keeps false alarms (rules and model
   together) within MAX_FALSE_ALARMS.
2. Fit on train + dev with the same settings and thresholds, and write the weights.
Each fit is the n-gram heads plus, where the embedded MiniLM is installed, the fine-tuned encoder
(`encoder_fit.py`): six fits, about 35 minutes on a 2-core CPU. The test split is never read here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from medchat.app.triage import corpus, features
from medchat.app.triage.guidance import CATEGORIES
from medchat.app.triage.model import DATA_DIR, HEADS, TriageModel
from medchat.app.triage.text import normalize

CLASSES = list(CATEGORIES)
MAX_FALSE_ALARMS = 0.04  # out of fold, leaving a margin under the 5% target
SELF_HARM_ALARMS = 0.01  # ordinary messages the self-harm head alone may flag
FOLDS = 5
C_NGRAM = 100.0  # chosen on the dev split; 2 to 100 give the same out-of-fold curve


def corpus_hash(folder: Path | None = None) -> str:
    h = hashlib.sha256()
    for path in sorted(Path(folder or corpus.CORPUS_DIR).glob("*.jsonl")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _fit_heads(x, rows, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights (dim, 2 + categories) and biases for the emergency, self-harm and category heads."""
    from sklearn.linear_model import LogisticRegression

    emergency, self_harm, category = corpus.head_labels(rows, CLASSES)
    w = np.zeros((x.shape[1], len(HEADS) + len(CLASSES)), dtype=np.float32)
    b = np.full(len(HEADS) + len(CLASSES), -30.0, dtype=np.float32)  # categories absent from training never win
    for col, y in enumerate((emergency, self_harm)):
        head = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, y)
        w[:, col], b[col] = head.coef_[0], head.intercept_[0]
    head = LogisticRegression(C=c, max_iter=3000).fit(x[emergency], category[emergency])
    w[:, len(HEADS) + head.classes_] = head.coef_.T
    b[len(HEADS) + head.classes_] = head.intercept_
    return w, b


def fit(rows, meta: dict | None = None, log=lambda _: None) -> TriageModel:
    """A model (n-grams, plus the encoder where its base is installed) fitted on `rows`."""
    from kb.embedder import default_model_dir
    from medchat.app.triage import encoder_fit

    x = features.matrix([normalize(r.text) for r in rows])
    w, b = _fit_heads(x, rows, C_NGRAM)
    cols = np.unique(x.indices).astype(np.int64)  # only these columns ever carry weight
    meta = {"classes": CLASSES, "thresholds": {"en": 0.5, "zh": 0.5}, "self_harm_threshold": 0.5, **(meta or {})}
    base = default_model_dir()
    if base is None:
        log("  the embedded sentence encoder is not installed: n-gram model only")
    encoder = encoder_fit.fit(rows, CLASSES, base, log=log) if base is not None else None
    return TriageModel(CLASSES, cols, w[cols].astype(np.float16), b, meta, encoder)


class _Replay:
    """Stands in for a TriageModel inside `Triager`: answers each text with its out-of-fold prediction, so
    thresholds are chosen through the very decision code chat uses (rules, vetoes, self-harm head)."""

    def __init__(self, predictions: dict[str, object], thresholds: dict, self_harm: float | dict):
        self.predictions = predictions
        self.meta = {"thresholds": dict(thresholds), "self_harm_threshold": self_harm}

    def predict(self, norm: str):
        return self.predictions[norm]

    def threshold(self, language: str) -> float:
        return float(self.meta["thresholds"].get(language, self.meta["thresholds"]["en"]))


def out_of_fold(rows, log=print) -> dict:
    """normalised text -> Prediction of a model that never saw the text's family (FOLDS family-grouped
    folds over `rows`). Thresholds read from these rest on every train and dev family, not on the dev
    split alone, whose few hundred ordinary messages per language set a noisy false-alarm rate."""
    fold = {r.family: int(hashlib.sha1(r.family.encode()).hexdigest()[:8], 16) % FOLDS for r in rows}
    out = {}
    for k in range(FOLDS):
        model = fit([r for r in rows if fold[r.family] != k], log=log)
        for r in rows:
            if fold[r.family] == k:
                norm = normalize(r.text)
                out[norm] = model.predict(norm)
        log(f"  fold {k + 1}/{FOLDS} scored")
    return out


def choose_self_harm_threshold(predictions: dict, rows) -> float:
    """The lowest self-harm threshold in [0.2, 0.5] at which the self-harm head alone raises alarms on at
    most SELF_HARM_ALARMS of the ordinary messages: as much self-harm recall as the alarm budget allows."""
    ordinary = sorted((predictions[normalize(r.text)].self_harm for r in rows if not r.emergency), reverse=True)
    allowed = int(SELF_HARM_ALARMS * len(ordinary))
    edge = ordinary[allowed] + 1e-6 if allowed < len(ordinary) else 0.0
    return float(min(0.5, max(0.2, edge)))


def choose_self_harm_thresholds(predictions: dict, rows) -> dict:
    """Per language, the self-harm threshold of `choose_self_harm_threshold` over that language's rows.
    The head is less sure of itself on Chinese ordinary messages (on the dev split, n-grams fitted on
    train, about half the Chinese false alarms were its), so a pooled budget lets Chinese spend it."""
    return {lang: choose_self_harm_threshold(predictions, [r for r in rows if r.lang == lang])
            for lang in sorted({r.lang for r in rows})}


def choose_thresholds(predictions: dict, rows, self_harm: float | dict) -> dict:
    """Per language, the lowest emergency threshold whose out-of-fold false-alarm rate (rules and model
    together, as `Triager` decides) stays within MAX_FALSE_ALARMS. Alarms only grow as the threshold
    falls, so a binary search over the candidate scores finds it."""
    from medchat.app.triage.decide import Triager

    out = {}
    for lang in sorted({r.lang for r in rows}):
        ordinary = [r.text for r in rows if r.lang == lang and not r.emergency]
        replay = _Replay(predictions, {"en": 0.5, **out}, self_harm)
        triager = Triager(model=replay)

        def alarms(th: float) -> int:
            replay.meta["thresholds"][lang] = th
            return sum(triager.assess(text).emergency for text in ordinary)

        candidates = sorted({round(predictions[normalize(t)].score, 4) for t in ordinary if
                             predictions[normalize(t)].score <= 0.5} | {0.5})
        lo, hi = 0, len(candidates) - 1  # candidates[hi] = 0.5 is the ceiling, kept even if over budget
        while lo < hi:
            mid = (lo + hi) // 2
            if alarms(candidates[mid]) <= MAX_FALSE_ALARMS * len(ordinary):
                hi = mid
            else:
                lo = mid + 1
        out[lang] = candidates[lo]
    return out


def save(model: TriageModel, folder: Path | None = None) -> Path:
    """Write the weights beside each other's final names, then move them in: an interrupted save leaves
    the previous model whole."""
    from safetensors.numpy import save_file

    from medchat.app.triage.encoder import ENCODER_FILE

    folder = Path(folder or DATA_DIR)
    meta = {k: v for k, v in model.meta.items() if k != "encoder"}
    arrays = {"ngram_cols": model.cols, "ngram_w": model.weights.astype(np.float16), "ngram_b": model.bias}
    save_file(arrays, str(folder / "model.safetensors.tmp"))
    if model.encoder is not None:
        meta["encoder"] = model.encoder.meta
        save_file(model.encoder.arrays, str(folder / f"{ENCODER_FILE}.tmp"))
    (folder / "model.json.tmp").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name in ("model.safetensors", ENCODER_FILE, "model.json"):  # the json last: it names what is there
        if (folder / f"{name}.tmp").exists():
            (folder / f"{name}.tmp").replace(folder / name)
        elif name == ENCODER_FILE:
            (folder / name).unlink(missing_ok=True)
    return folder


def build(folder: Path | None = None, log=print) -> TriageModel:
    rows = corpus.select(corpus.load_rows(), "train", "dev")
    log(f"triage build: {len(rows)} train+dev rows (the test split is not read); scoring {FOLDS} folds")
    predictions = out_of_fold(rows, log)
    self_harm = choose_self_harm_thresholds(predictions, rows)
    thresholds = choose_thresholds(predictions, rows, self_harm)
    log(f"thresholds chosen out of fold: {thresholds}, self-harm {self_harm}")
    meta = {"thresholds": thresholds, "self_harm_threshold": self_harm, "corpus_sha256": corpus_hash(),
            "features": features.VERSION,
            "trained_on": ["train", "dev"], "rows": len(rows),
            "examples": [{"category": r.category, "text": r.text} for r in rows if r.emergency]}
    final = fit(rows, meta, log=log)
    save(final, folder)
    return final
