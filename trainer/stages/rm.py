"""Reward model (stage rm): a LoRA + scalar head scoring a whole conversation, trained on pairs.

    profile = run(cfg)                          # installs a profile of kind "reward"
    scorer = load_reward_model("covid-rm")      # scorer.score([messages, ...]) -> tensor of scores

Model: AutoModelForSequenceClassification(num_labels=1) on the base, the --from chain merged in
(trainer.modeling.load_for_training, merge_parents=True), a new LoRA whose task type SEQ_CLS makes
peft save the `score` head with it (modules_to_save), so the profile's adapter dir is a standard PEFT dir that reloads for scoring.
The score is read at each conversation's last real token (we pick it from the attention mask
instead of relying on pad-token detection, which breaks when pad == eos). Loss: the pairwise
-log sigmoid(r_chosen - r_rejected); accuracy: how often chosen scores above rejected.
Training runs in the shared TrainLoop (trainer.stages.loop: resume, cadence, ranks) with this
module's batch and loss. Why not trl's RewardTrainer: it reads the score through model.forward's
pad-token detection (wrong when pad == eos) and has its own resume/run-dir layout.
Scoring lives in trainer.reward_model (re-exported here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medchat.core.profiles import Profile, ProfileStore
from trainer.data.pairwise import conversation, encode_conversation
from trainer.modeling import template_of
from trainer.reward_model import RewardScorer, load_reward_model, require_reward_profile, right_pad, score_batch
from trainer.stages.skeleton import finish, load_preference_data, prepare

__all__ = ["run", "evaluate", "pair_loss", "RewardScorer", "load_reward_model", "require_reward_profile",
           "right_pad", "score_batch"]


def pair_loss(model, pairs: list[tuple[list[int], list[int]]], pad_id: int, device):
    """(loss, accuracy, mean margin) of a batch of (chosen ids, rejected ids)."""
    ids, mask = right_pad([c for c, _ in pairs] + [r for _, r in pairs], pad_id, device)
    scores = score_batch(model, ids, mask)
    chosen, rejected = scores[:len(pairs)], scores[len(pairs):]
    margin = chosen - rejected
    return -F.logsigmoid(margin).mean(), (margin > 0).float().mean().item(), margin.mean().item()


# --- training -----------------------------------------------------------------------------------
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


def _pairs_batch(device, pad_id):
    def make(pairs):
        return {"pairs": pairs, "num_tokens": sum(len(c) + len(r) for c, r in pairs),
                "device": device, "pad_id": pad_id}
    return make


def _pairs_loss(model, batch):
    """TrainLoop loss: the pairwise loss summed over the batch, with accuracy and margin sums."""
    pairs = batch["pairs"]
    ids, mask = right_pad([c for c, _ in pairs] + [r for _, r in pairs], batch["pad_id"], batch["device"])
    scores = score_batch(model, ids, mask)
    margin = scores[:len(pairs)] - scores[len(pairs):]
    return -F.logsigmoid(margin).sum(), {"accuracy": float((margin > 0).float().sum()),
                                         "margin": float(margin.detach().sum())}


def run(cfg, quiet: bool = False, store: ProfileStore | None = None, on_step=None, **_) -> Profile | None:
    from trainer.stages.loop import TrainLoop, make_accelerator

    job = prepare(cfg, "rm", load_data=load_preference_data, store=store, quiet=quiet, task="seq_cls",
                  merge_parents=True)
    cfg, tm, run = job.cfg, job.tm, job.run
    train_ex, val_ex, infos = job.data
    template = template_of(cfg, tm)
    train, val = _encode(tm, train_ex, template, cfg.data.cutoff_len), _encode(tm, val_ex, template, cfg.data.cutoff_len)
    pad_id = tm.tokenizer.pad_token_id if tm.tokenizer.pad_token_id is not None else 0
    acc = make_accelerator(cfg)
    device = tm.model.device
    # the shared loop, unwrapped (ddp=False): the score is read from the backbone, not model.forward
    loop = TrainLoop(cfg, tm, run, train, val, acc, quiet=quiet, on_step=on_step, loss_fn=_pairs_loss,
                     count_fn=lambda b: len(b["pairs"]), make_batch=_pairs_batch(device, pad_id), ddp=False,
                     keep_best=False)
    job.say(f"rm {cfg.model.method}: {len(train)} train / {len(val)} val pairs, {loop.total} steps; run {run.dir}")
    with job.guard():
        result = loop.fit()
    model, t = tm.model, cfg.training
    final_train = job.dist.mean(evaluate(model, train, pad_id, device, t.batch_size))
    metrics = {"train_loss": final_train["loss"], "train_accuracy": final_train["accuracy"], "steps": result.step,
               "runtime_s": round(result.runtime_s, 1), "train_pairs": len(train), "val_pairs": len(val),
               "cutoff_len": cfg.data.cutoff_len}
    if val:
        ev = job.dist.mean(evaluate(model, val, pad_id, device, t.batch_size))
        metrics.update(eval_loss=ev["loss"], eval_accuracy=ev["accuracy"], eval_margin=ev["margin"])

    def message(profile, m):
        acc_text = f", val accuracy {m['eval_accuracy']:.2f}" if val else ""
        return (f"installed reward profile '{profile.name}' (chain {' > '.join(profile.chain)}): {result.step} "
                f"steps, train accuracy {m['train_accuracy']:.2f}{acc_text}; use it with --reward {profile.name}")

    return finish(job, result.adapter_dir, metrics, infos, kind="reward", message=message)
