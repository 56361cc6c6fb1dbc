"""`medchat bench` decode-mode figures: speed and accuracy of every fast-path mode, in one run.

Accuracy is measured against the float fast path (decode_mode="float") with the same LoRA profile:

- agreement_64: greedy decode of exactly 64 token ids per prompt (no EOS or stop-marker trimming,
  no detokenization). Per prompt, the strict prefix agreement is the number of leading positions
  whose ids equal the float path's, up to the first differing id, divided by 64 (after the first
  divergence the two continuations condition on different text, so later matches do not count).
  The figure is the median over the prompts in medchat/app/decode_prompts.json.
- match_64: the per-prompt share of the 64 positions whose ids match (not just the prefix), median;
  a looser secondary figure.
- max_rel_logit: on the first step (the prefill's next-token logits), max |mode - float| /
  max |float|, the maximum over prompts.
- tok_s: a fixed-length greedy decode of `tokens` ids through the backend (prefill included) on the
  bench prompt, median of `repeats`; the modes are interleaved per repeat so load drifts hit all alike.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

N_AGREE = 64


def prompt_messages() -> list[list[dict]]:
    from medchat.app.context import format_context
    from medchat.core.settings import DOCTOR_SYSTEM_PROMPT

    data = json.loads((Path(__file__).parent / "decode_prompts.json").read_text(encoding="utf-8"))
    out = []
    for p in data["prompts"]:
        user = p["question"]
        if p.get("passages"):
            passages = [SimpleNamespace(**x) for x in p["passages"]]
            user = f"{format_context(passages)}\n\nQuestion: {user}"
        out.append([{"role": "system", "content": DOCTOR_SYSTEM_PROMPT}, {"role": "user", "content": user}])
    return out


def greedy_ids(backend, ids: list[int], n: int) -> tuple[torch.Tensor, list[int]]:
    """First-step logits and exactly n greedy ids (argmax; EOS does not stop it)."""
    backend.reset()
    logits = backend.forward(ids)
    first, out = logits.clone(), []
    for i in range(n):
        out.append(int(logits.argmax()))
        if i + 1 < n:
            logits = backend.forward([out[-1]])
    return first, out


def prefix_agreement(got: list[int], ref: list[int]) -> float:
    same = 0
    for a, b in zip(got, ref):
        if a != b:
            break
        same += 1
    return same / len(ref)


def match_share(got: list[int], ref: list[int]) -> float:
    return sum(a == b for a, b in zip(got, ref)) / len(ref)


def measure(base: str | None, store, profile: str, bench_prompt: list[dict], tokens: int, repeats: int,
            modes: list[str] | None = None) -> dict:
    from medchat.core.engine import ChatEngine
    from medchat.core.engine.fast_llama import DECODE_MODES, DEFAULT_CPU_MODE, canonical_mode

    modes = [canonical_mode(m) for m in modes] if modes else list(DECODE_MODES)
    engines = {}
    for mode in modes:
        e = ChatEngine(base, store=store, decode_mode=mode)
        e.use(profile)
        engines[mode] = e
    first = engines[modes[0]]
    speed_ids = first.prompt_ids(bench_prompt, tokens)
    rates: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(repeats):
        for mode, e in engines.items():
            t0 = time.perf_counter()
            greedy_ids(e.backend, speed_ids, tokens)
            rates[mode].append(tokens / (time.perf_counter() - t0))
    figures = {m: {"tok_s": round(statistics.median(r), 1)} for m, r in rates.items()}
    prompts = [first.prompt_ids(msgs, N_AGREE) for msgs in prompt_messages()]
    ref_engine = engines.get("float") or ChatEngine(base, store=store, decode_mode="float")
    ref_engine.use(profile)
    refs = [greedy_ids(ref_engine.backend, ids, N_AGREE) for ids in prompts]
    for mode, e in engines.items():
        if e is ref_engine:  # the reference itself
            figures[mode].update(reference=True)
            continue
        print(f"bench: decode mode {mode}: greedy agreement on {len(prompts)} prompts…", file=sys.stderr, flush=True)
        agree, share, rel = [], [], []
        for ids, (ref_logits, ref_ids) in zip(prompts, refs):
            logits, got = greedy_ids(e.backend, ids, N_AGREE)
            agree.append(prefix_agreement(got, ref_ids))
            share.append(match_share(got, ref_ids))
            rel.append(float((logits - ref_logits).abs().max() / ref_logits.abs().max()))
        figures[mode].update(agreement_64=round(statistics.median(agree), 3),
                             agreement_64_mean=round(statistics.fmean(agree), 3),
                             match_64=round(statistics.median(share), 3), max_rel_logit=round(max(rel), 4))
    return {"default_mode": DEFAULT_CPU_MODE, "agreement_prompts": len(prompts), "profile": profile,
            "modes": figures}
