"""Replies for many prompts: batched `generate` on the transformers model, or the engine one at a time.

Batched (the default): the engine is built on the transformers+peft backend, `engine.use(profile)`
activates the profile's adapter chain on the peft model, and prompts (sorted by length, so a batch
pads little) are left-padded with an attention mask and decoded by `model.generate`. Each row's new
tokens then go through the engine's own stop rules (stop tokens, invented role tags, a sentence cut
by the token limit), so a greedy batched reply is the text `engine.generate` gives for that prompt.

Sequential: `engine.generate` per prompt; works on every backend (also the fast CPU path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from medchat.core.engine.decode import TAIL_GUARD, TextStream
from medchat.core.engine.protocol import collect
from medchat.core.settings import GenerationSettings


@dataclass
class Reply:
    text: str
    completion_tokens: int  # generated tokens before the stop (what the model spent)
    stop_reason: str  # eos | marker | length


def finalize(tokenizer, new_ids: list[int], stops: set[int], max_new_tokens: int) -> Reply:
    """Apply the engine's streaming stop rules to a finished token list (same text as ChatEngine.stream)."""
    text = TextStream(tokenizer)
    reason, count = "length", 0
    for step, token in enumerate(new_ids[:max_new_tokens]):
        if token in stops:
            reason = "eos"
            break
        count += 1
        text.push(token, max_new_tokens - step <= TAIL_GUARD)
        if text.stopped_by_marker:
            reason = "marker"
            break
    text.finish(cut_by_length=reason == "length")
    return Reply(text.text, count, reason)


def _generation_config(settings: GenerationSettings, stops: set[int], pad_id: int):
    from transformers import GenerationConfig

    kw = dict(max_new_tokens=settings.max_new_tokens, eos_token_id=sorted(stops), pad_token_id=pad_id,
              repetition_penalty=settings.repetition_penalty or 1.0)
    if settings.greedy:
        kw.update(do_sample=False)
    else:
        kw.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
    return GenerationConfig(**kw)


@torch.inference_mode()
def generate_batched(engine, prompts: list[list[dict]], settings: GenerationSettings, batch_size: int = 8,
                     on_batch: Callable[[int], None] | None = None) -> list[Reply]:
    """Replies for `prompts` (message lists) under the engine's active profile, `batch_size` at a time."""
    model = engine.hf_model()
    if model is None:
        raise ValueError("batched generation needs the transformers backend (ChatEngine(fast=False))")
    tok = engine.tokenizer
    stops = engine.stop_ids
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(stops)
    config = _generation_config(settings, stops, pad_id)
    if settings.seed is not None and not settings.greedy:
        torch.manual_seed(int(settings.seed))
    ids = [engine.prompt_ids(m, settings.max_new_tokens) for m in prompts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[Reply | None] = [None] * len(ids)
    device = engine.device
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = max(len(ids[i]) for i in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):  # left padding: every prompt ends at the last column
            input_ids[r, width - len(ids[i]):] = torch.tensor(ids[i])
            mask[r, width - len(ids[i]):] = 1
        gen = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                             generation_config=config)
        for r, i in enumerate(rows):
            out[i] = finalize(tok, gen[r, width:].tolist(), stops, settings.max_new_tokens)
        if on_batch:
            on_batch(len(rows))
    return out  # type: ignore[return-value]


def generate_sequential(engine, prompts: list[list[dict]], settings: GenerationSettings,
                        on_batch: Callable[[int], None] | None = None) -> list[Reply]:
    out = []
    for messages in prompts:
        if engine.hf_model() is not None:
            # start each prompt from an empty cache: no crop of transformers' DynamicCache is needed
            # (older HFBackend.truncate crashed on transformers 5), and eval prompts share little prefix
            engine.reset()
        text, stats = collect(engine.stream(messages, settings))
        out.append(Reply(text, stats.completion_tokens, stats.stop_reason))
        if on_batch:
            on_batch(1)
    return out
