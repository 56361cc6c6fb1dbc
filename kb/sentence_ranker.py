"""`medchat kb fit-ranker`: fit the key-fact sentence ranker (`kb.key_facts.rank_score`) on the grounded
question set's train split, never on its test split.

Each covered train question is retrieved as the chat retrieves it (its earlier questions, then itself),
every candidate sentence of the passages gets `rank_features`, and the label is "the sentence holds an
expected fact". A logistic regression learns the weights. Cross-validation grouped by condition
reports how often an expected fact is among the first k listed sentences (k = 1..4), on conditions
each fold's fit did not see. The result is written to RANKER_FILE through a temporary file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kb.grounded import contains_fact
from kb.key_facts import FEATURES, MIN_SIMILARITY, RANKER_FILE, content_words, rank_features, rank_score, scored

C = 1.0  # inverse L2 strength; 0.1 to 10 gave the same cross-validated figures
FOLDS = 5
TOP = (1, 2, 3, 4)


def examples(questions, retrieve, embedder) -> list[tuple[str, list[tuple[list[float], bool, float]]]]:
    """Per covered question: (its condition, [(features, holds an expected fact, floor cosine)] per
    candidate sentence). `retrieve(query)` returns the passages the chat would show."""
    from kb.section_intent import query_text

    out = []
    for q in questions:
        if not q.covered:
            continue
        query = query_text(q)
        asked = content_words(q.question)
        rows = [(rank_features(c, cq, n, asked, s, getattr(p, "section", "")), contains_fact(s, q.facts), max(c, cq))
                for n, p, s, c, cq in scored(q.question, retrieve(query), embedder, query)]
        out.append((q.source, rows))
    return out


def fit_weights(data) -> dict:
    """{"features", "weights", "bias"} of a logistic regression over every candidate of `data`."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([f for _, rows in data for f, _, _ in rows], dtype=np.float64)
    y = np.array([label for _, rows in data for _, label, _ in rows])
    if len(set(y.tolist())) < 2:
        from medchat.core.errors import UserError

        raise UserError("fitting the ranker needs candidate sentences that hold an expected fact and others that "
                        "do not")
    clf = LogisticRegression(C=C, max_iter=2000).fit(x, y)
    return {"features": list(FEATURES), "weights": [round(float(w), 6) for w in clf.coef_[0]],
            "bias": round(float(clf.intercept_[0]), 6)}


def top_k_hits(data, ranker: dict) -> dict[str, float]:
    """Share of questions with an expected fact among the first k ranked sentences that clear the floor."""
    hits = dict.fromkeys(TOP, 0)
    for _, rows in data:
        order = sorted((r for r in rows if r[2] >= MIN_SIMILARITY), key=lambda r: -rank_score(r[0], ranker))
        for k in TOP:
            hits[k] += any(label for _, label, _ in order[:k])
    return {f"top{k}": round(hits[k] / max(1, len(data)), 4) for k in TOP}


def fold_of(condition: str) -> int:
    return int(hashlib.sha1(condition.encode("utf-8")).hexdigest(), 16) % FOLDS


def cross_validate(data) -> dict[str, float]:
    """top_k_hits of each fold's questions under a ranker fitted on the other folds, pooled."""
    hits, n = {}, 0
    for k in range(FOLDS):
        held = [d for d in data if fold_of(d[0]) == k]
        if not held:
            continue
        part = top_k_hits(held, fit_weights([d for d in data if fold_of(d[0]) != k]))
        hits = {key: hits.get(key, 0.0) + v * len(held) for key, v in part.items()}
        n += len(held)
    return {key: round(v / n, 4) for key, v in hits.items()}


def fit(questions, retrieve, embedder) -> dict:
    """The ranker fitted on every covered question given, with its cross-validated figures."""
    from kb.section_intent import questions_digest

    covered = [q for q in questions if q.covered]
    data = examples(covered, retrieve, embedder)
    return {**fit_weights(data), "questions": len(data), "questions_sha256": questions_digest(covered),
            "cross_validated": cross_validate(data), "C": C}


def save(ranker: dict, path: Path | None = None) -> Path:
    path = Path(path or RANKER_FILE)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(ranker, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
