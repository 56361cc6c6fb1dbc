"""Reward model (stage rm): a LoRA + scalar head scoring a whole conversation, trained on pairs.

    profile = run(cfg)                          # installs a profile of kind "reward"
    scorer = load_reward_model("covid-rm")      # scorer.score([messages, ...]) -> tensor of scores

Model: AutoModelForSequenceClassification(num_labels=1) on the base, the --from chain merged in
(trainer.ppo.merged), a new LoRA whose task type SEQ_CLS makes peft save the `score` head with it
(modules_to_save), so the profile's adapter dir is a standard PEFT dir that reloads for scoring.
The score is read at each conversation's last real token (we pick it from the attention mask
instead of relying on pad-token detection, which breaks when pad == eos). Loss: the pairwise
-log sigmoid(r_chosen - r_rejected); accuracy: how often chosen scores above rejected.
Why a small loop instead of trl's RewardTrainer: we need the merged-parent model, resume through
the shared run dir and exact control of where the score is read; the loop is short.
"""

from __future__ import annotations

import json
import math
import sys
import time

import torch
import torch.nn.functional as F

from medchat.core.errors import UserError
from medchat.core.profiles import Profile, ProfileStore
from trainer.data import dataset_dir_of
from trainer.data.pairwise import conversation, encode_conversation, load_pairs
from trainer.install import install_adapter, preflight
from trainer.modeling import load_adapter_weights, make_optimizer, make_scheduler, save_adapter
from trainer.runs import Run, TrainProgress


# --- scoring ------------------------------------------------------------------------------------
def _parts(model):
    """(backbone, score head) of a seq-cls model, wrapped by peft or not."""
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(core, core.base_model_prefix), core.score


def score_batch(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Scalar score per right-padded row, read at the row's last real token."""
    backbone, head = _parts(model)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    last = attention_mask.long().sum(1) - 1
    picked = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    return head(picked).squeeze(-1).float()


def right_pad(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids.to(device), mask.to(device)


def pair_loss(model, pairs: list[tuple[list[int], list[int]]], pad_id: int, device):
    """(loss, accuracy, mean margin) of a batch of (chosen ids, rejected ids)."""
    ids, mask = right_pad([c for c, _ in pairs] + [r for _, r in pairs], pad_id, device)
    scores = score_batch(model, ids, mask)
    chosen, rejected = scores[:len(pairs)], scores[len(pairs):]
    margin = chosen - rejected
    return -F.logsigmoid(margin).mean(), (margin > 0).float().mean().item(), margin.mean().item()


class RewardScorer:
    """A loaded reward profile: `score(list of message lists) -> tensor` (also callable as a reward_fn)."""

    def __init__(self, model, tokenizer, template: str, profile: Profile, max_len: int = 1024):
        self.model, self.tokenizer, self.template, self.profile, self.max_len = model, tokenizer, template, profile, max_len
        self.device = next(model.parameters()).device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @torch.no_grad()
    def score(self, conversations: list[list[dict]], batch_size: int = 8) -> torch.Tensor:
        out = []
        for i in range(0, len(conversations), batch_size):
            rows = [encode_conversation(self.tokenizer, c, self.template, self.max_len)
                    for c in conversations[i:i + batch_size]]
            ids, mask = right_pad(rows, self.pad_id, self.device)
            out.append(score_batch(self.model, ids, mask).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    __call__ = score


def require_reward_profile(name: str, store: ProfileStore | None = None, flag: str = "--reward") -> Profile:
    if not name:
        raise UserError(f"{flag} NAME is required: a reward profile to score replies "
                        "(train one with `medchat train --stage rm --from covid-sft --dataset covid_pairs --name covid-rm`)")
    profile = (store or ProfileStore()).get(name)
    if profile.kind != "reward":
        raise UserError(f"{flag} {name}: '{name}' is a {profile.kind} profile, not a reward model; "
                        "pass a profile trained with --stage rm")
    return profile


def load_reward_model(profile_name: str, device: str | None = None, store: ProfileStore | None = None,
                      dtype=None) -> RewardScorer:
    """Load a reward profile (base + merged parents + its adapter with the score head) for scoring."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from medchat.core.models import fingerprint, pick_device, resolve_base
    from trainer.data.encoding import resolve_template
    from trainer.modeling import load_tokenizer
    from trainer.ppo.merged import merge_chain

    store = store or ProfileStore()
    profile = require_reward_profile(profile_name, store)
    base_dir = resolve_base(profile.base or None)
    if profile.base_fingerprint and fingerprint(base_dir) != profile.base_fingerprint:
        raise UserError(f"reward profile '{profile.name}' was made for other weights than '{profile.base}' "
                        "now holds; retrain it")
    device = pick_device(device)
    tok = load_tokenizer(base_dir)
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the base has no `score` weights; the adapter brings them
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1,
                                                                   dtype=dtype or torch.float32)
    finally:
        hf_logging.set_verbosity(level)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    links = store.chain_dirs(profile)
    model = merge_chain(model, links[:-1])
    model = PeftModel.from_pretrained(model, str(links[-1][1]))
    model.to(device).eval()
    max_len = int(profile.metrics.get("cutoff_len", 1024))  # score as in training: same truncation
    return RewardScorer(model, tok, resolve_template(tok, profile.chat_template), profile, max_len)


# --- training -----------------------------------------------------------------------------------
def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _encode(tm, examples, template: str, cutoff: int) -> list[tuple[list[int], list[int]]]:
    return [(encode_conversation(tm.tokenizer, conversation(ex, ex.chosen), template, cutoff),
             encode_conversation(tm.tokenizer, conversation(ex, ex.rejected), template, cutoff)) for ex in examples]


@torch.no_grad()
def evaluate(model, pairs, pad_id: int, device, batch_size: int = 8) -> dict:
    was = model.training
    model.eval()
    loss = acc = margin = 0.0
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        lo, ac, ma = pair_loss(model, chunk, pad_id, device)
        loss, acc, margin = loss + float(lo) * len(chunk), acc + ac * len(chunk), margin + ma * len(chunk)
    model.train(was)
    n = max(len(pairs), 1)
    return {"loss": loss / n, "accuracy": acc / n, "margin": margin / n}


def load_preference_data(cfg) -> tuple[list, list, list[dict]]:
    """(train examples, val examples, manifest infos) for rm and dpo."""
    from trainer.stages.causal import split_val

    ddir = dataset_dir_of(cfg)
    d = cfg.data
    train, infos = load_pairs(d.datasets, ddir, d.skip_bad, d.max_samples)
    if d.val_dataset:
        val, val_infos = load_pairs(d.val_dataset, ddir, d.skip_bad, d.max_samples)
        infos += [{**i, "split": "val"} for i in val_infos]
    else:
        train, val = split_val(train, d.val_size, cfg.training.seed)
    return train, val, infos


def run(cfg, quiet: bool = False, store: ProfileStore | None = None, on_step=None, **_) -> Profile:
    from trainer.ppo.merged import load_merged, template_of
    from trainer.stages.causal import resolve_resume

    cfg.stage = "rm"
    cfg, run_dir = resolve_resume(cfg)
    cfg.validate()
    preflight(cfg, store)
    train_ex, val_ex, infos = load_preference_data(cfg)
    t = cfg.training
    torch.manual_seed(t.seed)  # the new adapter and score head's initial weights
    tm = load_merged(cfg, task="seq_cls", store=store)
    template = template_of(cfg, tm)
    train, val = _encode(tm, train_ex, template, cfg.data.cutoff_len), _encode(tm, val_ex, template, cfg.data.cutoff_len)
    run = run_dir or Run.create(cfg)
    pad_id = tm.tokenizer.pad_token_id if tm.tokenizer.pad_token_id is not None else 0
    model, device = tm.model, tm.model.device
    per_step = t.batch_size * t.grad_accum
    steps_per_epoch = max(1, math.ceil(len(train) / per_step))
    total = t.max_steps or max(1, math.ceil(t.num_epochs * steps_per_epoch))
    optimizer = make_optimizer(tm, t)
    scheduler = make_scheduler(optimizer, t, total)
    state = {"step": 0, "runtime_s": 0.0}
    ckpt = run.latest_checkpoint() if t.resume else None
    if ckpt is not None:
        load_adapter_weights(tm, ckpt / "adapter")
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=True))
        state = json.loads((ckpt / "state.json").read_text())
        run.truncate_log(state["step"])
    _say(f"rm {cfg.model.method}: {len(train)} train / {len(val)} val pairs, {total} steps; run {run.dir}")
    run.set_status("running")
    params = [p for p in model.parameters() if p.requires_grad]
    step, t0, ran = state["step"], time.perf_counter(), state["runtime_s"]
    last = {"loss": float("nan"), "accuracy": 0.0}
    eval_every = t.eval_steps or steps_per_epoch

    def write(tmp, step=None):
        save_adapter(tm, tmp / "adapter")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, "runtime_s": ran + time.perf_counter() - t0}))

    with run.guard(f"medchat train --stage rm --resume {run.dir} --name {cfg.name}", _say):
        model.train()
        with torch.enable_grad(), TrainProgress(total, f"rm {cfg.name}", quiet, start=step) as bar:
            while step < total:
                epoch, k = divmod(step, steps_per_epoch)
                perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(t.seed + epoch)).tolist()
                chunk = [train[i] for i in perm[k * per_step:(k + 1) * per_step]] or [train[i] for i in perm[:per_step]]
                torch.manual_seed(t.seed * 1_000_003 + step)  # dropout: resume gives the same step
                loss_sum = acc_sum = 0.0
                for j in range(0, len(chunk), t.batch_size):
                    micro = chunk[j:j + t.batch_size]
                    loss, acc, _ = pair_loss(model, micro, pad_id, device)
                    (loss * len(micro) / len(chunk)).backward()
                    loss_sum, acc_sum = loss_sum + float(loss.detach()) * len(micro), acc_sum + acc * len(micro)
                if t.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                last = {"loss": loss_sum / len(chunk), "accuracy": acc_sum / len(chunk)}
                record = None
                if step % t.logging_steps == 0 or step == total:
                    record = {"step": step, "epoch": round(step / steps_per_epoch, 3), "loss": round(last["loss"], 6),
                              "accuracy": round(last["accuracy"], 4), "lr": scheduler.get_last_lr()[0]}
                if val and (step % eval_every == 0 or step == total):
                    ev = evaluate(model, val, pad_id, device, t.batch_size)
                    record = {**(record or {"step": step}), "eval_loss": round(ev["loss"], 6),
                              "eval_accuracy": round(ev["accuracy"], 4), "eval_margin": round(ev["margin"], 4)}
                if record:
                    run.log(record)
                bar.update(step, loss=last["loss"], lr=scheduler.get_last_lr()[0],
                           eval_loss=record.get("eval_loss") if record else None)
                if step % t.save_steps == 0 or step == total:
                    run.save_checkpoint(step, lambda tmp: write(tmp, step))
                if on_step:
                    on_step(step)
    run.replace_dir("final", lambda d: save_adapter(tm, d))
    final_train = evaluate(model, train, pad_id, device, t.batch_size)
    metrics = {"train_loss": final_train["loss"], "train_accuracy": final_train["accuracy"], "steps": step,
               "runtime_s": round(ran + time.perf_counter() - t0, 1), "train_pairs": len(train), "val_pairs": len(val),
               "cutoff_len": cfg.data.cutoff_len}
    if val:
        ev = evaluate(model, val, pad_id, device, t.batch_size)
        metrics.update(eval_loss=ev["loss"], eval_accuracy=ev["accuracy"], eval_margin=ev["margin"])
    metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
    datasets = [{k: v for k, v in i.items() if k in ("name", "sha256", "rows", "split")} for i in infos]
    profile = install_adapter(cfg, tm, run.dir / "final", datasets, metrics, kind="reward", store=store)
    run.write_summary({"profile": profile.name, "chain": profile.chain, "metrics": metrics, "datasets": infos})
    run.set_status("installed", profile=profile.name)
    acc = f", val accuracy {metrics['eval_accuracy']:.2f}" if val else ""
    print(f"installed reward profile '{profile.name}' (chain {' > '.join(profile.chain)}): {step} steps, "
          f"train accuracy {metrics['train_accuracy']:.2f}{acc}; use it with --reward {profile.name}", flush=True)
    return profile
