"""The sampler's score steps do what transformers' logits processors do, on random scores."""

from __future__ import annotations

import pytest
import torch
from transformers import (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
                          TopPLogitsWarper)

from medchat.core.engine import warpers
from medchat.core.settings import GenerationSettings

VOCAB = 257


def scores(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(1, VOCAB, generator=g) * 4
    s[0, :7] = s[0, 7]  # ties, which top-k keeps together
    return s


def context(seed: int, n: int = 12) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, n), generator=torch.Generator().manual_seed(seed + 100))


CASES = [(warpers.repetition_penalty(1.3), RepetitionPenaltyLogitsProcessor(1.3)),
         (warpers.repetition_penalty(0.8), RepetitionPenaltyLogitsProcessor(0.8)),
         (warpers.temperature(0.7), TemperatureLogitsWarper(0.7)),
         (warpers.top_k(50), TopKLogitsWarper(50)),
         (warpers.top_k(3), TopKLogitsWarper(3)),
         (warpers.top_k(10_000), TopKLogitsWarper(10_000)),
         (warpers.top_p(0.9), TopPLogitsWarper(0.9)),
         (warpers.top_p(0.01), TopPLogitsWarper(0.01))]


@pytest.mark.parametrize("ours,theirs", CASES)
@pytest.mark.parametrize("seed", range(5))
def test_each_step_matches_transformers(ours, theirs, seed):
    ids, s = context(seed), scores(seed)
    assert torch.equal(ours(ids, s.clone()), theirs(ids, s.clone()))


def test_a_step_leaves_its_input_unchanged():
    ids, s = context(0), scores(0)
    before = s.clone()
    for step in warpers.chain(GenerationSettings(temperature=0.7, top_k=5, top_p=0.8, repetition_penalty=1.2)):
        step(ids, s)
    assert torch.equal(s, before)


def test_repetition_penalty_with_an_empty_context_changes_nothing():
    s = scores(1)
    assert torch.equal(warpers.repetition_penalty(1.5)(torch.zeros(1, 0, dtype=torch.long), s), s)


def test_top_p_always_keeps_the_best_token():
    s = torch.tensor([[0.0, 50.0, 0.0]])
    out = warpers.top_p(0.0)(torch.zeros(1, 0, dtype=torch.long), s)
    assert out[0, 1] == 50.0 and torch.isinf(out[0, [0, 2]]).all()


@pytest.mark.parametrize("settings,names", [
    (GenerationSettings(temperature=0.0, repetition_penalty=1.0), []),
    (GenerationSettings(temperature=0.0, repetition_penalty=1.1), ["repetition_penalty"]),
    (GenerationSettings(temperature=0.7, top_k=0, top_p=1.0, repetition_penalty=1.0), ["temperature"]),
    (GenerationSettings(temperature=0.7, top_k=50, top_p=0.9, repetition_penalty=1.1),
     ["repetition_penalty", "temperature", "top_k", "top_p"]),
])
def test_the_chain_holds_what_the_settings_ask_for_in_generate_s_order(settings, names):
    assert [step.__qualname__.split(".")[0] for step in warpers.chain(settings)] == names


def test_the_whole_chain_matches_transformers_processors_in_order():
    settings = GenerationSettings(temperature=0.8, top_k=40, top_p=0.85, repetition_penalty=1.2)
    theirs = [RepetitionPenaltyLogitsProcessor(1.2), TemperatureLogitsWarper(0.8), TopKLogitsWarper(40),
              TopPLogitsWarper(0.85)]
    for seed in range(5):
        ids, a = context(seed), scores(seed)
        b = a.clone()
        for step in warpers.chain(settings):
            a = step(ids, a)
        for proc in theirs:
            b = proc(ids, b)
        assert torch.equal(a, b)
