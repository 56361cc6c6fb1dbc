"""`medchat eval mcq`: multiple-choice accuracy of each profile, scored by log-likelihood (no sampling).

Prompt: one user turn rendered with the active profile's chat template (the engine's own prompt
building, trimmed to the context like a chat turn):

    [Context:\\n<PubMedQA abstracts>\\n\\n]Question: <question>\\n\\nOptions:\\nA. <text>\\nB. <text>...
    \\n\\nAnswer with the text of the correct option.

then the assistant's reply starts with `Answer:` and each option's continuation is " <option text>".
An option's score is the sum of the log-probabilities of its continuation tokens (`--score sum`) or
that sum divided by the number of tokens (`--score mean`, the default: a plain sum favours short
options, since every extra token can only lower it). The highest score is the answer; a tie goes to
the option listed first.

Questions are sorted by prompt length and run through the transformers model `--batch-size` at a
time: one forward pass for their prompts (left-padded), then one for all their options on copies of
the prompts' KV cache, so a prompt is computed once however many options it has.

Report per profile: accuracy, Wilson 95% interval, n; baselines: majority (the most frequent gold
letter's share) and random (mean of 1 / number of options).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from medchat.core.errors import UserError
from medchat.app.evaluation.mcq_formats import MCQItem, MCQSet, load_mcq
from medchat.core.models import LoadOptions

SCORE_MODES = ("mean", "sum")
DEFAULT_SCORE = "mean"
ANSWER_PREFIX = "Answer:"
INSTRUCTION = "Answer with the text of the correct option."
Z95 = 1.959963984540054  # two-sided 95% normal quantile

# One profile's scores: per question, per option, (sum of continuation log-probs, continuation tokens).
OptionScores = list[list[tuple[float, int]]]


@dataclass
class MCQOptions:
    file: str
    profiles: list[str]
    format: str = "auto"
    limit: int | None = None
    score: str = DEFAULT_SCORE
    base: str | None = None
    load: LoadOptions = field(default_factory=LoadOptions)
    batch_size: int = 8
    quiet: bool = False


def question_messages(item: MCQItem) -> list[dict]:
    parts = [f"Context:\n{item.context}"] if item.context else []
    parts.append(f"Question: {item.question}")
    parts.append("Options:\n" + "\n".join(f"{letter}. {text}" for letter, text in item.options))
    parts.append(INSTRUCTION)
    return [{"role": "user", "content": "\n\n".join(parts)}]


def encode_item(engine, item: MCQItem) -> tuple[list[int], list[list[int]]]:
    """(prompt ids ending in the assistant's `Answer:`, each option's continuation ids)."""
    tok = engine.tokenizer
    conts = [tok(" " + text, add_special_tokens=False)["input_ids"] for _, text in item.options]
    prefix = tok(ANSWER_PREFIX, add_special_tokens=False)["input_ids"]
    prompt = engine.prompt_ids(question_messages(item), len(prefix) + max(len(c) for c in conts))
    return prompt + prefix, conts


def option_logprobs(engine, items: list[MCQItem], batch_size: int = 8) -> OptionScores:
    """Scores of every option under the engine's active profile (the transformers backend)."""
    import torch  # here, not at import: building the CLI's parser imports this module

    with torch.inference_mode():
        return _option_logprobs(engine, items, batch_size)


def _option_logprobs(engine, items: list[MCQItem], batch_size: int) -> OptionScores:
    model = engine.hf_model()
    if model is None:
        raise ValueError("option scoring needs the transformers backend (ChatEngine(fast=False))")
    pad_id = engine.tokenizer.pad_token_id if engine.tokenizer.pad_token_id is not None else 0
    encoded = [encode_item(engine, item) for item in items]
    order = sorted(range(len(items)), key=lambda i: len(encoded[i][0]))  # similar lengths pad little
    out: list = [None] * len(items)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        for i, scores in zip(rows, _score_batch(model, [encoded[i] for i in rows], pad_id, engine.device)):
            out[i] = scores
    return out


def _score_batch(model, batch: list[tuple[list[int], list[list[int]]]], pad_id: int, device) -> OptionScores:
    """One forward for the questions' prompts (left-padded), then one for all their options on copies
    of that KV cache (right-padded), so a prompt is computed once however many options it has."""
    import torch

    from medchat.core.engine.hf_backend import cache_kwarg, returned_cache

    k = max(len(conts) for _, conts in batch)  # option rows per question (missing ones stay masked)
    width = max(len(prompt) for prompt, _ in batch)
    cwidth = max(len(c) for _, conts in batch for c in conts)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    cont = torch.full((len(batch) * k, cwidth), pad_id, dtype=torch.long)
    cmask = torch.zeros((len(batch) * k, cwidth), dtype=torch.long)
    for b, (prompt, conts) in enumerate(batch):
        ids[b, width - len(prompt):] = torch.tensor(prompt)
        mask[b, width - len(prompt):] = 1
        for j, c in enumerate(conts):
            cont[b * k + j, :len(c)] = torch.tensor(c)
            cmask[b * k + j, :len(c)] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding must not shift positions
    first = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                  use_cache=True, logits_to_keep=1)
    cache = returned_cache(first)
    cache.batch_repeat_interleave(k)
    # the last prompt token predicts each option's first token; option token t predicts token t + 1
    first_lp = torch.log_softmax(first.logits[:, -1].float(), -1).cpu().repeat_interleave(k, 0)
    lengths = mask.sum(1).repeat_interleave(k)
    logits = model(input_ids=cont.to(device), use_cache=True, **{cache_kwarg(model): cache},
                   attention_mask=torch.cat([mask.repeat_interleave(k, 0), cmask], 1).to(device),
                   position_ids=(lengths[:, None] + torch.arange(cwidth)[None]).to(device)).logits[:, :-1].float()
    later = (logits.gather(-1, cont[:, 1:, None].to(device)).squeeze(-1) - torch.logsumexp(logits, -1)).cpu()
    totals = first_lp.gather(1, cont[:, :1]).squeeze(1) + (later * cmask[:, 1:]).sum(1)
    return [[(float(totals[b * k + j]), len(c)) for j, c in enumerate(conts)] for b, (_, conts) in enumerate(batch)]


def pick(scores: list[tuple[float, int]], mode: str = DEFAULT_SCORE) -> int:
    """Index of the best option: highest sum or mean log-prob; the first listed wins a tie."""
    values = [total if mode == "sum" else total / max(1, n) for total, n in scores]
    return max(range(len(values)), key=values.__getitem__)


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (no continuity correction)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def evaluate(data: MCQSet, scorers: dict[str, Callable[[list[MCQItem]], OptionScores]],
             score: str = DEFAULT_SCORE, say: Callable[[str], None] = lambda text: None) -> dict:
    """Accuracy per profile from each profile's option scores, with baselines (no model needed here)."""
    if score not in SCORE_MODES:
        raise UserError(f"--score must be one of {', '.join(SCORE_MODES)}, got '{score}'")
    profiles = {}
    for name, scorer in scorers.items():
        t0 = time.perf_counter()
        scores = scorer(data.items)
        correct = sum(item.options[pick(s, score)][0] == item.answer for item, s in zip(data.items, scores))
        n = len(data.items)
        profiles[name] = {"accuracy": correct / n, "ci95": list(wilson(correct, n)), "n": n}
        say(f"{name}: {correct}/{n} correct in {time.perf_counter() - t0:.1f} s")
    return {"profiles": profiles, "baselines": data.baselines(), "format": data.format, "file": data.file,
            "score": score, "skipped_multi_answer": data.skipped_multi_answer, "notes": list(data.notes)}


def run_mcq(o: MCQOptions) -> dict:
    """Load the questions and the engine (as `medchat eval` does), score every profile, report."""
    from medchat.core.engine import ChatEngine
    from medchat.app.evaluation.runner import base_of, check_profiles
    from medchat.core.profiles import ProfileStore

    def say(text: str) -> None:
        if not o.quiet:
            print(f"eval mcq: {text}", file=sys.stderr, flush=True)

    if o.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {o.batch_size}")
    if o.score not in SCORE_MODES:
        raise UserError(f"--score must be one of {', '.join(SCORE_MODES)}, got '{o.score}'")
    store = ProfileStore()
    profiles = check_profiles(store, o.profiles, reward_hint=False, base=o.base)
    data = load_mcq(o.file, o.format, o.limit)  # bad files fail before any model loads
    say(f"{len(data.items)} {data.format} questions from {o.file}"
        + (f" ({data.skipped_multi_answer} multi-answer skipped)" if data.skipped_multi_answer else ""))
    engine = ChatEngine(base_of(o.base, profiles), o.load, store=store, fast=False)
    say(f"base {engine.base_name} on {engine.info['device']} ({engine.info['backend']})")

    def scorer(name: str):
        def run(items: list[MCQItem]) -> OptionScores:
            engine.use(name)
            return option_logprobs(engine, items, o.batch_size)
        return run

    result = evaluate(data, {name: scorer(name) for name in o.profiles}, o.score, say)
    result["base"] = {"name": engine.base_name, "fingerprint": engine.info.get("fingerprint"),
                      "device": engine.info.get("device")}
    return result
