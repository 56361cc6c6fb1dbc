"""Batched, left-padded greedy generation equals the engine's one-at-a-time greedy replies."""

from __future__ import annotations

import pytest

from medchat.core.models import fingerprint
from medchat.core.profiles import Profile, ProfileStore
from medchat.core.settings import GenerationSettings

PROMPTS = [  # different lengths, so every batch needs left padding
    [{"role": "user", "content": "fever?"}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "The patient has a cough and chest pain with sweating. What now?"}],
    [{"role": "user", "content": "Hello doctor"}],
    [{"role": "user", "content": "Diabetes means high blood sugar. Hypertension means high blood pressure. Why?"}],
]


@pytest.fixture(scope="module")
def engine(tiny_model_dir, lora_a, tmp_path_factory):
    from medchat.core.engine import ChatEngine

    store = ProfileStore(tmp_path_factory.mktemp("profiles"))
    store.install(Profile(name="p1", base=str(tiny_model_dir), base_fingerprint=fingerprint(tiny_model_dir),
                          stage="sft"), lora_a)
    return ChatEngine(str(tiny_model_dir), store=store, fast=False)


@pytest.mark.parametrize("profile", ["base", "p1", "base"])
def test_batched_equals_sequential_greedy(engine, profile):
    from medchat.app.evaluation.generate import generate_batched, generate_sequential

    engine.use(profile)
    assert engine.hf_model() is not None
    settings = GenerationSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=16)
    batched = generate_batched(engine, PROMPTS, settings, batch_size=3)
    one_by_one = generate_sequential(engine, PROMPTS, settings)
    assert [r.text for r in batched] == [r.text for r in one_by_one]
    assert [(r.completion_tokens, r.stop_reason) for r in batched] == \
        [(r.completion_tokens, r.stop_reason) for r in one_by_one]
    assert any(r.completion_tokens > 0 for r in batched)


def test_profiles_change_replies(engine):
    from medchat.app.evaluation.generate import generate_batched

    settings = GenerationSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=12)
    engine.use("base")
    base = generate_batched(engine, PROMPTS, settings, batch_size=4)
    engine.use("p1")
    p1 = generate_batched(engine, PROMPTS, settings, batch_size=4)
    assert [r.text for r in base] != [r.text for r in p1]  # the adapter chain is really active
