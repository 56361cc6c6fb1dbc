"""Generation settings: parsing user text with bounds, dict round trips, the doctor preset."""

from __future__ import annotations

import pytest

from medchat.core.errors import UserError
from medchat.core.settings import DOCTOR_SYSTEM_PROMPT, GenerationSettings


def test_with_value_parses_and_returns_a_copy():
    s = GenerationSettings()
    t = s.with_value("temperature", "0.2").with_value("max_new_tokens", "64").with_value("top_k", 5)
    assert (t.temperature, t.max_new_tokens, t.top_k) == (0.2, 64, 5)
    assert s == GenerationSettings()  # frozen: the original is untouched


@pytest.mark.parametrize("name, raw, needle", [
    ("temperature", "hot", "must be a number"),
    ("top_k", "2.5", "must be an integer"),
    ("max_new_tokens", "0", "between"),
    ("top_p", "1.5", "between"),
    ("repetition_penalty", "9", "between"),
    ("seed", "-1", "between"),
    ("warmth", "1", "unknown setting 'warmth'"),
    ("top_k", float("inf"), "must be an integer"),  # int(inf) overflows; a TOML file can hold inf
    ("temperature", float("nan"), "between"),
])
def test_with_value_rejects_nonsense_with_one_clear_line(name, raw, needle):
    with pytest.raises(UserError, match=needle) as exc:
        GenerationSettings().with_value(name, raw)
    assert "\n" not in str(exc.value)


def test_seed_can_be_switched_off():
    s = GenerationSettings().with_value("seed", "42")
    assert s.seed == 42
    assert s.with_value("seed", "none").seed is None
    assert s.with_value("seed", "off").seed is None


def test_greedy_means_temperature_zero():
    assert GenerationSettings(temperature=0.0).greedy
    assert not GenerationSettings(temperature=0.1).greedy
    assert GenerationSettings().with_value("temperature", "0").greedy


def test_dict_round_trip_ignores_unknown_keys():
    s = GenerationSettings(temperature=0.3, seed=9)
    assert GenerationSettings.from_dict(s.to_dict()) == s
    assert GenerationSettings.from_dict({"top_k": 3, "colour": "red"}) == GenerationSettings(top_k=3)
    assert GenerationSettings.from_dict(None) == GenerationSettings()


def test_doctor_preset_mentions_the_safety_essentials():
    text = DOCTOR_SYSTEM_PROMPT.lower()
    assert "emergency" in text and "clinician" in text and "instructions" in text
