"""Triage quality on the held-out test split (families the model and the thresholds never saw).

Issue 10's targets are recall >= 0.98 in each language, 1.00 for self-harm, false alarms <= 5%.
Reached for English; not yet for Chinese. The bounds below are today's measured figures less a small
margin, so the test catches a regression; raise them as the model improves. Every miss is listed by
`medchat triage --eval test`.
"""

from __future__ import annotations

import pytest

from medchat.app.triage import triage
from medchat.app.triage.corpus import load_rows, select
from medchat.app.triage.evaluate import evaluate

FLOORS = {  # language: (recall, self-harm recall, false-alarm ceiling); measured with negated-word features
    # 0.987/1.00/0.036 (en, n-grams averaged with the fine-tuned encoder) and 0.975/0.974/0.082 (zh,
    # n-grams and rules), with the narrowed infant-fever veto; before them 0.985/1.00/0.044 and 0.972/0.987/0.083
    "en": (0.98, 1.00, 0.05),
    "zh": (0.96, 0.97, 0.10),
}


@pytest.fixture(scope="module")
def result():
    return evaluate(select(load_rows(), "test"), triage)


@pytest.mark.parametrize("lang", sorted(FLOORS))
def test_held_out_recall_and_false_alarms(result, lang):
    recall, self_harm, alarms = FLOORS[lang]
    got = result["languages"][lang]
    assert got["recall"] >= recall, got
    assert got["self_harm_recall"] >= self_harm, [m for m in result["misses"] if m["category"] == "self_harm"]
    assert got["false_alarm_rate"] <= alarms, got


def test_every_category_is_tested_in_both_languages():
    rows = select(load_rows(), "test")
    for lang in ("en", "zh"):
        cats = {r.category for r in rows if r.emergency and r.lang == lang}
        assert len(cats) >= 25
