"""The score steps before a token is drawn: repetition penalty, temperature, top-k, top-p.

Why not transformers' logits processors: they are the only part of transformers the fast chat path
would import, and that import costs ~0.8 s at every start (see tokenizer.py). Each step here does what
its transformers namesake does, tensor for tensor; `tests/unit/test_warpers.py` checks them against
transformers on random scores.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from medchat.core.settings import GenerationSettings

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (context ids (1, n), scores (1, vocab)) -> scores


def repetition_penalty(penalty: float) -> Step:
    """Make every token already in the context less likely: its score divided by `penalty` when positive,
    multiplied when negative (so the step always lowers it for penalty > 1)."""
    def step(context: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        seen = torch.gather(scores, 1, context)
        return scores.scatter(1, context, torch.where(seen < 0, seen * penalty, seen / penalty))
    return step


def temperature(t: float) -> Step:
    return lambda context, scores: scores / t


def top_k(k: int) -> Step:
    """Keep the k best scores (ties with the k-th kept too); the rest become -inf."""
    def step(context: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        kth = torch.topk(scores, min(max(k, 1), scores.size(-1)))[0][..., -1:]
        return scores.masked_fill(scores < kth, float("-inf"))
    return step


def top_p(p: float) -> Step:
    """Keep the smallest set of best tokens whose probabilities add up to more than p (at least one)."""
    def step(context: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        ascending, order = torch.sort(scores, descending=False)
        drop = ascending.softmax(-1).cumsum(-1) <= 1 - p  # the low tail holding at most 1 - p
        drop[..., -1:] = False
        return scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return step


def chain(settings: GenerationSettings) -> list[Step]:
    """The steps `settings` asks for, in the order transformers' generate applies them."""
    steps = []
    if settings.repetition_penalty and settings.repetition_penalty != 1.0:
        steps.append(repetition_penalty(settings.repetition_penalty))
    if not settings.greedy:
        steps.append(temperature(settings.temperature))
        if settings.top_k:
            steps.append(top_k(settings.top_k))
        if settings.top_p < 1.0:
            steps.append(top_p(settings.top_p))
    return steps
