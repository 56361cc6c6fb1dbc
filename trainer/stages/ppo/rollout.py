"""Sampling replies from the policy and scoring every reply token under policy, reference and critic.

Prompts are left-padded so all replies start at the same column; replies are right-padded, and a
reply ends at its first stop token (which is kept: emitting it is an action the policy takes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from trainer.stages.ppo import core


@dataclass
class Rollout:
    query_ids: torch.Tensor  # (B, P) left-padded
    query_mask: torch.Tensor  # (B, P)
    response_ids: torch.Tensor  # (B, R) right-padded
    response_mask: torch.Tensor  # (B, R) 1 up to and including the stop token
    texts: list[str]
    conversations: list[list[dict]]  # prompt messages + the sampled assistant reply
    extra: dict = field(default_factory=dict)  # logprobs, ref_logprobs, values, scores, ...

    def __len__(self) -> int:
        return self.query_ids.shape[0]

    def select(self, idx: torch.Tensor) -> dict:
        """Tensors of the rows in idx (for a minibatch)."""
        out = {"query_ids": self.query_ids[idx], "query_mask": self.query_mask[idx],
               "response_ids": self.response_ids[idx], "response_mask": self.response_mask[idx]}
        out.update({k: v[idx] for k, v in self.extra.items() if isinstance(v, torch.Tensor)})
        return out


def encode_prompts(tokenizer, prompts: list[list[dict]], template: str, max_len: int, pad_id: int):
    """Left-padded (ids, mask) for chat prompts ending with the assistant generation marker."""
    from medchat.core.engine.prompt import render_ids

    rows = [render_ids(tokenizer, p, template, add_generation_prompt=True)[-max_len:] for p in prompts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r)
        mask[i, width - len(r):] = 1
    return ids, mask


def reply_mask(response_ids: torch.Tensor, stop_ids: set[int]) -> torch.Tensor:
    """1 for tokens up to and including the first stop token of each row, 0 after it."""
    is_stop = torch.zeros_like(response_ids, dtype=torch.bool)
    for s in stop_ids:
        is_stop |= response_ids == s
    # number of stop tokens strictly before each position; positions with none before are in the reply
    before = torch.cumsum(is_stop.long(), 1) - is_stop.long()
    return (before == 0).long()


@torch.no_grad()
def sample(model, tokenizer, prompts: list[list[dict]], args, template: str, stop_ids: set[int],
           max_prompt_len: int = 512, generator_seed: int | None = None) -> Rollout:
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    q_ids, q_mask = encode_prompts(tokenizer, prompts, template, max_prompt_len, pad_id)
    gen = GenerationConfig(do_sample=True, temperature=float(args.temperature), top_k=int(args.top_k),
                           top_p=float(args.top_p), max_new_tokens=int(args.max_new_tokens),
                           repetition_penalty=1.0, eos_token_id=sorted(stop_ids), pad_token_id=pad_id,
                           use_cache=True)
    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    was_training = model.training
    model.eval()
    out = model.generate(input_ids=q_ids.to(device), attention_mask=q_mask.to(device), generation_config=gen)
    model.train(was_training)
    resp = out[:, q_ids.shape[1]:].cpu()
    if resp.shape[1] == 0:  # cannot happen with max_new_tokens >= 1, but keep shapes sane
        resp = torch.full((len(prompts), 1), pad_id, dtype=torch.long)
    mask = reply_mask(resp, stop_ids)
    resp = torch.where(mask.bool(), resp, torch.full_like(resp, pad_id))
    texts = []
    for row, m in zip(resp, mask):
        toks = [t for t in row[: int(m.sum())].tolist() if t not in stop_ids]
        texts.append(tokenizer.decode(toks, skip_special_tokens=True).strip())
    convs = [[*p, {"role": "assistant", "content": t}] for p, t in zip(prompts, texts)]
    return Rollout(q_ids, q_mask, resp, mask, texts, convs)


def forward(model, value_head, batch: dict, temperature: float, want_values: bool = True,
            want_entropy: bool = False):
    """Per reply token: log-prob of the sampled token, value estimate, entropy (each (B, R) or None)."""
    device = next(model.parameters()).device
    q_ids, q_mask = batch["query_ids"].to(device), batch["query_mask"].to(device)
    r_ids, r_mask = batch["response_ids"].to(device), batch["response_mask"].to(device)
    P, R = q_ids.shape[1], r_ids.shape[1]
    ids = torch.cat([q_ids, r_ids], 1)
    attn = torch.cat([q_mask, r_mask], 1)
    pos = (attn.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False,
                output_hidden_states=want_values, logits_to_keep=R + 1)
    logits = out.logits[:, :-1].float() / float(temperature)
    logprobs = core.logprobs_from_logits(logits, r_ids)
    values = entropy = None
    if want_values:
        hidden = out.hidden_states[-1][:, P - 1:P + R - 1]
        values = value_head(hidden).float()
    if want_entropy:
        with torch.no_grad():
            entropy = core.entropy_from_logits(logits)
    return logprobs, values, entropy
