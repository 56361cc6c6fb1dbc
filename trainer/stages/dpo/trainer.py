"""The dpo stage's pieces around trl's DPOTrainer: loss-type check, trl config, data, implicit margins.

implicit_margins measures, on pairs, DPO's implicit reward margin
beta * [(log pi(c) - log ref(c)) - (log pi(r) - log ref(r))] (the reference = adapters disabled)
and how often it is positive; the workflow measures it before and after training.
"""

from __future__ import annotations

import torch

from medchat.core.errors import UserError
from trainer.data.pairwise import conversation
from trainer.runs import Run


# trl 1.16's DPO losses; checked up front because trl only rejects an unknown one mid-training
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")


def loss_types(spec: str) -> list[str]:
    """'sigmoid' or a combination 'sigmoid,sft' -> a list trl accepts; UserError on unknown names."""
    types = [t.strip() for t in str(spec).split(",") if t.strip()]
    bad = [t for t in types if t not in LOSS_TYPES]
    if bad or not types:
        raise UserError(f"unknown --dpo-loss-type '{spec}'; use one of {', '.join(LOSS_TYPES)} "
                        "(or several, comma-separated)")
    return types


def _reply_ids(tokenizer, template: str, ex, reply: str, cutoff: int) -> tuple[list[int], int]:
    from medchat.core.engine.prompt import render_ids

    prompt = render_ids(tokenizer, ex.chat(), template, add_generation_prompt=True)
    full = render_ids(tokenizer, conversation(ex, reply), template, add_generation_prompt=False)
    return full[:cutoff], min(len(prompt), cutoff)


@torch.no_grad()
def reply_logps(model, tokenizer, template: str, examples, cutoff: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs of the chosen and of the rejected reply (after the prompt) for each pair."""
    device = next(model.parameters()).device
    out = {"chosen": [], "rejected": []}
    was = model.training
    model.eval()
    for ex in examples:
        for side in ("chosen", "rejected"):
            ids, start = _reply_ids(tokenizer, template, ex, getattr(ex, side), cutoff)
            x = torch.tensor([ids], device=device)
            logits = model(input_ids=x, use_cache=False).logits[0, :-1].float()
            logp = torch.log_softmax(logits, -1).gather(1, x[0, 1:, None]).squeeze(1)
            out[side].append(logp[start - 1:].sum().item())
    model.train(was)
    return torch.tensor(out["chosen"]), torch.tensor(out["rejected"])


def implicit_margins(peft_model, tokenizer, template: str, examples, beta: float, cutoff: int = 1024) -> dict:
    """DPO's implicit reward margin of the policy (the active adapter) against the reference (adapters off)."""
    pc, pr = reply_logps(peft_model, tokenizer, template, examples, cutoff)
    with peft_model.disable_adapter():
        rc, rr = reply_logps(peft_model, tokenizer, template, examples, cutoff)
    margin = beta * ((pc - rc) - (pr - rr))
    return {"margin": float(margin.mean()), "accuracy": float((margin > 0).float().mean()),
            "logp_gap": float((pc - pr).mean())}


def to_dataset(examples):
    """Pairs as the conversational dataset trl expects."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": ex.chat(), "chosen": [{"role": "assistant", "content": ex.chosen}],
                               "rejected": [{"role": "assistant", "content": ex.rejected}]} for ex in examples])


def dpo_config(cfg, run: Run, device: str, n_train: int, has_val: bool, quiet: bool):
    import math

    from trl import DPOConfig

    t = cfg.training
    steps_per_epoch = max(1, math.ceil(n_train / (t.batch_size * t.grad_accum)))
    total = t.max_steps or max(1, math.ceil(t.num_epochs * steps_per_epoch))
    try:
        return DPOConfig(
            output_dir=str(run.dir / "hf_checkpoints"), per_device_train_batch_size=t.batch_size,
            per_device_eval_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
            learning_rate=t.learning_rate, max_steps=total, lr_scheduler_type=t.scheduler,
            warmup_steps=int(round(t.warmup_ratio * total)), max_grad_norm=t.max_grad_norm,
            logging_steps=t.logging_steps, save_steps=t.save_steps, save_total_limit=2, seed=t.seed,
            bf16=t.bf16, fp16=t.fp16, gradient_checkpointing=t.gradient_checkpointing, use_cpu=device == "cpu",
            report_to=[], disable_tqdm=quiet, eval_strategy="steps" if has_val else "no",
            eval_steps=t.eval_steps or steps_per_epoch, beta=cfg.dpo.beta, loss_type=loss_types(cfg.dpo.loss_type),
            max_length=cfg.data.cutoff_len, dataloader_num_workers=0, remove_unused_columns=False,
            optim=t.optim or "adamw_torch")
    except ValueError as exc:
        raise UserError(f"invalid DPO settings: {exc}") from None


def check(cfg) -> None:
    if cfg.dpo.beta <= 0:
        raise UserError("--dpo-beta must be > 0")
    loss_types(cfg.dpo.loss_type)
