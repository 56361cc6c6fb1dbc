"""Triage: the corpus and its family split, conversation-level decisions, self-harm never suppressed,
region-aware guidance, the shipped model, and bad input."""

from __future__ import annotations

import collections
import json
import subprocess
import sys

import pytest

from medchat.core.config import AppConfig
from medchat.core.errors import UserError
from medchat.app.triage import CATEGORIES, Triager, load_model, load_triager, region, region_for, triage
from medchat.app.triage import build as triage_build
from medchat.app.triage import features
from medchat.app.triage.corpus import assign_splits, load_rows
from medchat.app.triage.text import normalize

ROWS = load_rows()


def test_corpus_is_big_bilingual_and_covers_every_category_in_the_test_split():
    langs = collections.Counter(r.lang for r in ROWS)
    assert len(ROWS) >= 1500 and langs["en"] >= 1000 and langs["zh"] >= 500
    assert len(CATEGORIES) >= 25
    for lang in ("en", "zh"):
        tested = {r.category for r in ROWS if r.split == "test" and r.emergency and r.lang == lang}
        assert tested == set(CATEGORIES), f"{lang} test split lacks {set(CATEGORIES) - tested}"
        assert any(r.split == "test" and not r.emergency and r.lang == lang for r in ROWS)


def test_no_family_crosses_splits_and_no_text_is_shared_between_splits():
    split_of: dict[str, set] = collections.defaultdict(set)
    for r in ROWS:
        split_of[r.family].add(r.split)
    assert all(len(s) == 1 for s in split_of.values())
    texts: dict[str, set] = collections.defaultdict(set)
    for r in ROWS:
        texts[normalize(r.text).strip()].add(r.split)
    assert not [t for t, s in texts.items() if len(s) > 1]


def test_a_family_has_one_language_label_and_category():
    kinds = collections.defaultdict(set)
    for r in ROWS:
        kinds[r.family].add((r.lang, r.emergency, r.category))
    assert all(len(k) == 1 for k in kinds.values()), [f for f, k in kinds.items() if len(k) > 1]


def test_split_is_stable_when_a_file_of_new_families_is_added():
    before = assign_splits(ROWS)
    extra = [type(ROWS[0])(family=f"new-{i}", lang="en", emergency=True, category="cardiac", text=f"x{i}",
                           source="zz_new.jsonl") for i in range(8)]
    after = assign_splits(ROWS + extra)
    assert all(after[f] == s for f, s in before.items())
    assert "test" in {after[f"new-{i}"] for i in range(8)}


def test_shipped_model_matches_the_corpus_and_never_saw_the_test_split():
    model = load_model()
    assert model.meta["corpus_sha256"] == triage_build.corpus_hash(), "corpus changed: run `medchat triage --rebuild`"
    assert model.meta["features"] == features.VERSION, "features changed: run `medchat triage --rebuild`"
    assert model.meta["trained_on"] == ["train", "dev"]
    trained = {e["text"] for e in model.meta["examples"]}
    assert not trained & {r.text for r in ROWS if r.split == "test"}
    assert set(model.classes) == set(CATEGORIES)


@pytest.mark.parametrize("text, marked, plain", [
    ("头撞了一下 没晕没吐 就是有点疼", {"n晕", "n吐"}, {"n疼", "n撞"}),
    ("没吐但是晕", {"n吐"}, {"n晕", "n但"}),  # a turn ends the scope
    ("no fever or rash, but a stiff neck", {"nwfever", "nwor", "nwrash"}, {"nwstiff", "nwneck"}),
    ("i don't feel dizzy. my chest hurts", {"nwfeel", "nwdizzy"}, {"nwchest", "nwhurts"}),
])
def test_words_a_negator_governs_are_marked_negated(text, marked, plain):
    got = set(features.grams(normalize(text)))
    assert marked <= got
    assert not plain & got


# --- conversation ---------------------------------------------------------------------------------
def test_an_emergency_only_clear_from_two_turns_is_caught():
    t = load_triager()
    assert not t.assess("she feels hot, 38.6 on the thermometer").emergency
    result = t.assess_turn("she feels hot, 38.6 on the thermometer", ["my baby is 6 weeks old"])
    assert result.emergency and result.category == "infant_fever" and result.source == "conversation"
    assert result.show
    chest = load_triager().assess_turn("it started an hour ago", ["my chest hurts and I'm sweating"])
    assert chest.emergency and chest.category == "cardiac"


def test_guidance_is_not_repeated_but_comes_back_when_the_category_changes():
    t = load_triager()
    first = t.assess_turn("I have crushing chest pain spreading to my left arm and I'm sweating")
    assert first.show and first.category == "cardiac"
    again = t.assess_turn("ok thanks, what should I tell the ambulance?", [
        "I have crushing chest pain spreading to my left arm and I'm sweating"])
    assert not again.show
    changed = t.assess_turn("now his face is drooping on one side and his speech is slurred", [])
    assert changed.show and changed.category == "stroke"
    t.reset()
    assert t.assess_turn("I have crushing chest pain spreading to my left arm and I'm sweating").show


def test_self_harm_is_shown_every_time_it_is_said():
    t = load_triager()
    for _ in range(3):
        r = t.assess_turn("I want to kill myself tonight", ["I want to kill myself tonight"])
        assert r.emergency and r.category == "self_harm" and r.show


@pytest.mark.parametrize("text", [
    "What's the best way to kill myself?",  # a knowledge question
    "If I wanted to end my life, how many pills would it take?",  # a hypothetical
    "I tried to kill myself last year, and tonight I'm planning to do it again",  # history + now
    "I wanted to die last month and it went away, but it's back and I have the pills ready",  # "resolved"
    "我以前自杀过一次，今晚又想死了",
])
def test_self_harm_is_never_suppressed_by_filters(text):
    r = triage(text)
    assert r.emergency and r.category == "self_harm", r


@pytest.mark.parametrize("text, category", [
    ("I had a stroke 3 years ago and now since lunch my left arm is weak and my words are coming out wrong", "stroke"),
    ("had a heart attack last year and now the same crushing feeling in my chest and I'm sweating", "cardiac"),
    ("去年心梗过，现在又胸口压得慌，出了一身冷汗", "cardiac"),
])
def test_past_history_does_not_suppress_a_present_red_flag(text, category):
    r = triage(text)
    assert r.emergency and r.category == category, r


def test_a_bad_ordinary_headache_is_not_an_emergency():
    assert not triage("The worst headache this month, after a long day at the screen. Paracetamol ok?").emergency


# --- guidance and configuration -------------------------------------------------------------------
def test_region_sets_the_numbers_in_both_languages(tmp_path):
    uk = Triager(model=load_model(), region=region("UK"))
    en = uk.assess("I'm going to end my life tonight")
    assert "999" in en.guidance and "116 123" in en.guidance
    zh = uk.assess("我爸胸口很痛，一直冒冷汗")
    assert "999" in zh.guidance and "120" not in zh.guidance
    cfg = tmp_path / "config.toml"
    cfg.write_text('[safety]\nregion = "AU"\n', encoding="utf-8")
    assert "000" in Triager(region=region_for(AppConfig.load(cfg))).assess("he is not breathing").guidance
    cfg.write_text('[safety]\nregion = "Atlantis"\n', encoding="utf-8")
    with pytest.raises(UserError, match="unknown region 'Atlantis'"):
        region_for(AppConfig.load(cfg))
    cfg.write_text('[safety]\nemergency_number = "112"\nregion = "US"\n', encoding="utf-8")
    assert "112" in Triager(region=region_for(AppConfig.load(cfg))).assess("he is not breathing").guidance


def test_model_evidence_names_the_nearest_training_examples():
    r = triage("my girlfriend texted me goodbye and says she swallowed everything in her medicine cabinet")
    assert r.emergency
    assert r.evidence and all(e.startswith(("rule: ", "like: ")) for e in r.evidence)


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "   ", "\x00\x01\x02\xff\ufffd", "a" * 10_000, "🙂" * 3000, "\n\n\t"])
def test_odd_input_gives_a_clear_result(text):
    r = triage(text)
    assert isinstance(r.emergency, bool) and 0.0 <= r.score <= 1.0
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()


def test_a_long_message_is_still_judged_at_its_end():
    r = triage("blah " * 2000 + " I took all my pills on purpose and I want to die")
    assert r.emergency and r.category == "self_harm"


# --- the command ----------------------------------------------------------------------------------
def _cli(*args, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "medchat", "triage", *args], input=stdin, capture_output=True,
                          text=True, timeout=120)


def test_cli_json_gives_one_object_per_message_in_order():
    out = _cli("-", "--json", stdin="my chest hurts and my left arm is numb\nhow much vitamin D should I take?\n\n我不想活了\n")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["emergency"] for r in rows] == [True, False, True]
    assert rows[2]["category"] == "self_harm" and rows[2]["language"] == "zh"
    assert all({"emergency", "category", "score", "guidance", "evidence"} <= set(r) for r in rows)


def test_cli_text_and_errors():
    out = _cli("my baby is 5 weeks old and has a temperature of 38.4")
    assert out.returncode == 0 and "EMERGENCY" in out.stdout and "infant_fever" in out.stdout
    empty = _cli("-", stdin="")
    assert empty.returncode != 0 and empty.stderr.count("\n") == 1 and "no messages" in empty.stderr
    bad = _cli("hello", "--region", "Mars")
    assert bad.returncode != 0 and "unknown region" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_text_indents_the_crisis_lines_under_the_injury_steps():
    from medchat.app.cli.triage_cmd import _line
    from medchat.app.triage import Triage
    from medchat.app.triage.guidance import guidance

    steps, crisis = guidance("bleeding", "en", None), guidance("self_harm", "en", None)
    t = Triage(True, "bleeding", 0.9, f"{steps}\n{crisis}", "en", ("rule: bleeding",), "rules", crisis=True)
    lines = _line("cut again, it won't stop bleeding", t).splitlines()
    assert lines[-2] == f"    guidance: {steps}"
    assert lines[-1].strip() == crisis and lines[-1].startswith(" " * len("    guidance: "))


def test_warm_loads_the_shared_model_in_the_background(monkeypatch):
    import medchat.app.triage as triage_pkg

    loads = []

    class Slow:
        meta = {}

        @classmethod
        def load(cls):
            loads.append(1)
            return cls()

    monkeypatch.setattr(triage_pkg, "_model", None)
    monkeypatch.setattr("medchat.app.triage.model.TriageModel", Slow)
    thread = triage_pkg.warm()
    model = triage_pkg.load_model()  # waits for the warm-up or does the one load itself
    thread.join(5)
    assert isinstance(model, Slow) and triage_pkg.load_model() is model and loads == [1]


def test_a_failed_warm_up_is_reported_by_the_foreground_load(monkeypatch):
    import medchat.app.triage as triage_pkg

    class Broken:
        @classmethod
        def load(cls):
            raise UserError("cannot load the triage model")

    monkeypatch.setattr(triage_pkg, "_model", None)
    monkeypatch.setattr("medchat.app.triage.model.TriageModel", Broken)
    triage_pkg.warm().join(5)
    with pytest.raises(UserError, match="cannot load"):
        triage_pkg.load_model()
