"""Which section of a condition's page a question asks about, and the re-ranking it drives.

Hybrid search finds the right condition but often ranks its Overview or "When to seek care" section
above the Treatment section a "what cream do I buy?" question needs, and the small chat model leans
on passage [1]. A logistic-regression head over hashed character and word n-grams of the query
predicts the section it asks about (Overview, Symptoms, Diagnosis, Treatment, Red flags, When to seek
care); each candidate passage's fused score gets `WEIGHT * P(its section)` before the top passages
are cut. Words, not the sentence embedding: the embedding of a short question is dominated by the
condition's name, and a head on it sent "how is gout diagnosed?" to Treatment.

The head is fitted (`medchat kb fit-intent`) on the grounded question set's train split plus the
section question templates filled with train-split condition names, never on the test split, and
ships as `kb/data/section_intent.safetensors` (float16 weights, classes and settings in the header).
It only moves passages whose section it knows; other KBs are ranked exactly as before.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = Path(__file__).parent / "data" / "section_intent.safetensors"

# Chosen by 5-fold cross-validation over the grounded train split, grouped by condition: the first
# passage held an expected fact for 68.4% of questions without the boost, 84.5% with 0.005, 82.7% with
# 0.01 and 80.7% with 0.02; the fused reciprocal-rank scores it is added to lie between ~0.016 and 0.033.
WEIGHT = 0.005
C = 10.0  # inverse L2 strength; 1-30 gave 75-78% section accuracy in the same cross-validation
TEMPLATE_WEIGHT = 0.3  # a filled template counts less than a question written by hand
N_FEATURES = 2 ** 14  # per analyzer; the head is 6 x 32768 float16 weights (~0.4 MB)


@functools.lru_cache(maxsize=1)
def _vectorizer():
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.pipeline import make_union

    # character n-grams within words survive typos ("tretment", "diagnosd"); words and word pairs
    # carry the question's shape ("when should", "how is ... diagnosed")
    return make_union(
        HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=N_FEATURES, alternate_sign=False),
        HashingVectorizer(analyzer="word", ngram_range=(1, 2), n_features=N_FEATURES, alternate_sign=False,
                          token_pattern=r"(?u)\b\w+\b"))


def features(texts: list[str]):
    """Sparse (len(texts), 2 * N_FEATURES) rows: two L2-normalised hashed n-gram blocks."""
    return _vectorizer().transform(texts)


@dataclass(frozen=True)
class SectionIntent:
    classes: tuple[str, ...]
    coef: object  # float32 (n_classes, 2 * N_FEATURES)
    intercept: object  # float32 (n_classes,)
    meta: dict

    def probabilities(self, text: str) -> dict[str, float]:
        import numpy as np

        logits = features([text]) @ self.coef.T + self.intercept
        logits = np.asarray(logits, dtype="float64").reshape(-1)
        e = np.exp(logits - logits.max())
        return dict(zip(self.classes, (e / e.sum()).tolist()))

    def save(self, path: Path | None = None) -> None:
        import numpy as np
        from safetensors.numpy import save_file

        path = Path(path or MODEL_FILE)
        meta = {**{k: str(v) for k, v in self.meta.items()}, "classes": json.dumps(list(self.classes))}
        tmp = path.with_name(path.name + ".tmp")
        # contiguous copies: sklearn's coef_ is Fortran-ordered and safetensors writes the raw buffer
        arrays = {"coef": np.ascontiguousarray(self.coef, dtype="float16"),
                  "intercept": np.ascontiguousarray(self.intercept, dtype="float32")}
        save_file(arrays, str(tmp), metadata=meta)
        tmp.replace(path)


def load(path: Path | None = None) -> SectionIntent | None:
    """The head stored at `path` (default `MODEL_FILE`), or None when there is none."""
    path = Path(path or MODEL_FILE)
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return _load(str(path), (st.st_ino, st.st_mtime_ns))  # a replaced file is read again


@functools.lru_cache(maxsize=4)
def _load(path: str, _version: tuple) -> SectionIntent:
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        meta = dict(f.metadata() or {})
        coef, intercept = f.get_tensor("coef").astype("float32"), f.get_tensor("intercept")
    classes = tuple(json.loads(meta.pop("classes")))
    return SectionIntent(classes, coef, intercept, meta)


def rerank(passages: list, probabilities: dict[str, float], weight: float | None = None) -> list:
    """`passages` (best first, each with `.score` and `.section`) re-ordered by score + weight * P(section).

    The boost is folded into each returned passage's score, so the order stays "best score first";
    equal scores keep their original order.
    """
    import dataclasses

    weight = WEIGHT if weight is None else weight
    boosted = [dataclasses.replace(p, score=p.score + weight * probabilities.get(p.section, 0.0)) for p in passages]
    order = sorted(range(len(boosted)), key=lambda i: (-boosted[i].score, i))
    return [boosted[i] for i in order]


def questions_digest(questions) -> str:
    """sha256 of the training questions (id, text, context, section), recorded in the head's header."""
    blob = json.dumps([[q.id, q.question, list(q.context), q.section] for q in questions], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def query_text(question) -> str:
    """What the chat would search with for a grounded question (its context, then the question)."""
    from kb import turn_query

    return turn_query(question.context, question.question)


def template_questions(conditions: dict[str, list[str]], templates: dict[str, list[str]],
                       follow_ups: dict[str, list[str]], names_each: int = 2) -> list[tuple[str, str]]:
    """(question, section) pairs: every template filled with each condition's first `names_each`
    names, plus the follow-ups as they are."""
    out = [(t.format(n=name), section) for names in conditions.values() for name in names[:names_each]
           for section, ts in templates.items() for t in ts]
    return out + [(t, section) for section, ts in follow_ups.items() for t in ts]


def fit(questions, templated: list[tuple[str, str]] = ()) -> SectionIntent:
    """Fit the head on covered questions that name their section (the grounded train split) and
    (question, section) pairs from templates, weighted `TEMPLATE_WEIGHT`."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from medchat.core.errors import UserError

    rows = [q for q in questions if q.covered and q.section]
    texts = [query_text(q) for q in rows] + [t for t, _ in templated]
    labels = [q.section for q in rows] + [s for _, s in templated]
    if len(set(labels)) < 2:
        raise UserError("fitting the section head needs questions from at least two sections")
    weights = [1.0] * len(rows) + [TEMPLATE_WEIGHT] * len(templated)
    clf = LogisticRegression(C=C, max_iter=3000, class_weight="balanced")
    clf.fit(features(texts), labels, sample_weight=weights)
    coef, intercept = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # a binary fit stores one row (for the second class); softmax needs both
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    meta = {"questions": len(rows), "questions_sha256": questions_digest(rows), "templated": len(templated),
            "templated_sha256": hashlib.sha256(json.dumps(list(templated)).encode()).hexdigest(), "C": C,
            "template_weight": TEMPLATE_WEIGHT, "n_features": N_FEATURES}
    return SectionIntent(tuple(str(c) for c in clf.classes_), coef.astype("float32"), intercept.astype("float32"), meta)


def measure(base, questions, head: SectionIntent, k: int = 4, min_similarity: float | None = None) -> dict:
    """How often an expected fact is in the first passage / any of the `k` passages the chat gets,
    ranked without and with `head`, over the covered `questions` (as `kb.retrieve` selects them)."""
    from kb import DEFAULT_MIN_SIMILARITY

    floor = DEFAULT_MIN_SIMILARITY if min_similarity is None else min_similarity
    rows = [q for q in questions if q.covered]
    counts = {"first_plain": 0, "first_head": 0, "any_plain": 0, "any_head": 0}
    for q in rows:
        text = query_text(q)
        hits = [p for p in base.search(text, k=max(k, 8), rerank=False) if p.similarity >= floor]
        ranked = {"plain": hits[:k], "head": rerank(hits, head.probabilities(text))[:k]}
        for name, passages in ranked.items():
            holds = [any(f.lower() in p.text.lower() for f in q.facts) for p in passages]
            counts[f"first_{name}"] += bool(holds and holds[0])
            counts[f"any_{name}"] += any(holds)
    n = len(rows)
    return {"questions": n, **{key: round(v / n, 3) if n else 0.0 for key, v in counts.items()}}
