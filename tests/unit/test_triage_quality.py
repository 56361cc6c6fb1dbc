"""Triage quality on the held-out test split (families the model and the thresholds never saw).

Issue 10's targets are recall >= 0.98 in each language, 1.00 for self-harm, false alarms <= 5%.
Reached for English; for Chinese, recall and self-harm recall, not yet false alarms. The bounds below
are today's measured figures less a small margin, so the test catches a regression; raise them as the
model improves. Every miss is listed by `medchat triage --eval test`.
"""

from __future__ import annotations

import pytest

from medchat.app.triage import triage
from medchat.app.triage.corpus import load_rows, select
from medchat.app.triage.evaluate import evaluate

FLOORS = {  # language: (recall, self-harm recall, false-alarm ceiling). Measured on the whole test split after
    # the thirteenth session (idf-weighted n-grams under calibrated linear SVMs, 5,233 more Chinese rows in 1,308
    # families, a quarter of them in test): 0.986/1.00/0.033 (en) and 0.984/1.00/0.052 (zh; on the families
    # that existed before the twelfth session, 0.993/1.00/0.031); after the twelfth, 0.983/1.00/0.042 and
    # 0.969/0.989/0.065 on a test split without the newest families
    "en": (0.98, 1.00, 0.05),
    "zh": (0.975, 1.00, 0.06),
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
