"""Reward model (stage rm): a LoRA + scalar head scoring a whole conversation, trained on pairs.

    profile = run(cfg)                          # installs a profile of kind "reward"
    scorer = trainer.reward_model.load_reward_model("covid-rm")   # scorer.score([messages, ...])

Model: AutoModelForSequenceClassification(num_labels=1) on the base, the --from chain merged in
(trainer.modeling.load_for_training, merge_parents=True), a new LoRA whose task type SEQ_CLS makes
peft save the `score` head with it (modules_to_save), so the profile's adapter dir is a standard PEFT
dir that reloads for scoring.
Training runs in the shared TrainLoop (trainer.stages.loop: resume, cadence, ranks) with the batch,
loss and eval of trainer.py here. Why not trl's RewardTrainer: it reads the score through model.forward's
pad-token detection (wrong when pad == eos) and has its own resume/run-dir layout.
Scoring lives in trainer.reward_model (shared with ppo and `medchat eval --reward`).
"""

from __future__ import annotations

from medchat.core.profiles import Profile, ProfileStore
from trainer.modeling import template_of
from trainer.stages.rm.trainer import encode_pairs, evaluate, pairs_batch, pairs_count, pairs_loss
from trainer.stages.skeleton import finish, load_preference_data, prepare


def run(cfg, quiet: bool = False, store: ProfileStore | None = None, on_step=None, **_) -> Profile | None:
    from trainer.stages.loop import TrainLoop, make_accelerator

    job = prepare(cfg, "rm", load_data=load_preference_data, store=store, quiet=quiet, task="seq_cls",
                  merge_parents=True)
    cfg, tm, run = job.cfg, job.tm, job.run
    train_ex, val_ex, infos = job.data
    template = template_of(cfg, tm)
    train, val = (encode_pairs(tm, ex, template, cfg.data.cutoff_len) for ex in (train_ex, val_ex))
    pad_id = tm.tokenizer.pad_token_id if tm.tokenizer.pad_token_id is not None else 0
    acc = make_accelerator(cfg)
    device = tm.model.device
    # the shared loop, unwrapped (ddp=False): the score is read from the backbone, not model.forward
    loop = TrainLoop(cfg, tm, run, train, val, acc, quiet=quiet, on_step=on_step, loss_fn=pairs_loss,
                     count_fn=pairs_count, make_batch=pairs_batch(device, pad_id), ddp=False,
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
