"""Safety triage: team-written message sets plus targeted behaviour checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medchat import safety
from medchat.safety import CATEGORIES, DISCLAIMER, Triage, triage

DATA = Path(__file__).resolve().parents[1] / "data"
EMERGENCY_NUMBER = re.compile(r"911|112|999|120")


def _load(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


EMERGENCY = _load("safety_emergency.jsonl")
ORDINARY = _load("safety_ordinary.jsonl")


def test_data_sets_are_big_enough_and_bilingual():
    langs = [row["lang"] for row in EMERGENCY]
    assert len(EMERGENCY) >= 40 and langs.count("en") >= 25 and langs.count("zh") >= 15
    assert len(ORDINARY) >= 60 and {row["lang"] for row in ORDINARY} == {"en", "zh"}
    assert {row["category"] for row in EMERGENCY} == set(CATEGORIES), "every category needs emergency examples"


@pytest.mark.parametrize("row", EMERGENCY, ids=lambda r: r["text"][:40])
def test_every_emergency_is_caught_with_the_right_category_and_language(row):
    result = triage(row["text"])
    assert result is not None, f"missed: {row['text']}"
    assert result.category == row["category"], f"{row['text']} -> {result.category} ({result.matched})"
    assert result.language == row["lang"]
    assert EMERGENCY_NUMBER.search(result.guidance)
    has_cjk = bool(re.search(r"[\u4e00-\u9fff]", result.guidance))
    assert has_cjk == (row["lang"] == "zh"), "guidance must be in the message's language"


def test_ordinary_messages_are_rarely_flagged():
    flagged = [(row["text"], triage(row["text"])) for row in ORDINARY]
    flagged = [(text, r.category, r.matched) for text, r in flagged if r is not None]
    assert len(flagged) <= 0.05 * len(ORDINARY), flagged


@pytest.mark.parametrize(
    "reported, not_reported",
    [
        ("I have chest pain and shortness of breath", "I have chest pain but no shortness of breath"),
        ("My dad's face is drooping, is it a stroke?", "Is face drooping a sign of a stroke?"),
        ("my son is having a seizure", "What should I do if someone has a seizure?"),
        ("I want to kill myself", "I would never kill myself, I just feel tired"),
        ("我胸口痛，还出冷汗", "我胸口痛，但是没有出汗"),
        ("我爸嘴歪了，是中风吗", "嘴歪是中风的症状吗？"),
        ("crushing chest pain and sweating right now", "I had chest pain and sweating last month but it went away"),
    ],
)
def test_negation_knowledge_and_hypotheticals(reported, not_reported):
    assert triage(reported) is not None
    assert triage(not_reported) is None


@pytest.mark.parametrize(
    "text, fires",
    [
        ("My 6-week-old has a temperature of 38.0", True),
        ("My 6-week-old has a temperature of 37.9", False),
        ("my 10 week old has a temperature of 100.4 F", True),
        ("my 10 week old has a temperature of 100.2 F", False),
        ("my 4 month old has a fever of 39", False),
        ("my 2 month old has a fever", True),
        ("my 2 month old has no fever but is fussy", False),
        ("宝宝两个月大，发烧38度5", True),
        ("宝宝五个月大，发烧38度5", False),
    ],
)
def test_infant_fever_thresholds(text, fires):
    result = triage(text)
    assert (result is not None and result.category == "infant_fever") == fires


def test_self_harm_guidance_has_crisis_contacts_in_both_languages():
    en = triage("I don't want to live anymore")
    zh = triage("我不想活了")
    assert en.category == zh.category == "self_harm"
    assert "988" in en.guidance and "crisis" in en.guidance
    assert "120" in zh.guidance and "心理援助热线" in zh.guidance


def test_traditional_chinese_is_handled():
    assert triage("我想自殺").category == "self_harm"
    assert triage("我爸胸口很痛，一直冒冷汗，還喘不過氣").category == "cardiac"


def test_every_category_has_guidance_in_both_languages():
    for category in CATEGORIES:
        en, zh = safety.guidance(category, "en"), safety.guidance(category, "zh")
        assert en and zh and en != zh


def test_triage_result_shape_and_empty_input():
    result = triage("He's unconscious and not breathing")
    assert isinstance(result, Triage)
    data = result.to_dict()
    assert set(data) == {"category", "guidance", "language", "matched"}
    assert data["matched"] and data["matched"] in safety.normalize("He's unconscious and not breathing")
    assert json.loads(json.dumps(data)) == data
    for empty in ("", "   ", None):
        assert triage(empty) is None
    assert "emergency" in DISCLAIMER and "clinician" in DISCLAIMER
