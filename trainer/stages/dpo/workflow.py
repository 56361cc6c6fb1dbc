"""DPO (stage dpo): trl's DPOTrainer on pairwise data, the reference being the --from profile.

    profile = run(cfg)        # cfg.dpo.beta, cfg.dpo.loss_type; LoRA or QLoRA (cfg.model.method)

The --from chain is merged into the in-memory base (trainer.modeling.load_for_training) and handed to trl as a plain
model with a peft_config, so trl's reference ("adapters disabled") is exactly the --from profile,
not the raw base. trl's logs go to trainer_log.jsonl; its checkpoints to run_dir/hf_checkpoints
(--resume continues from the newest). Before and after training we measure, on the validation
pairs (or the training pairs without a split), the implicit reward margin
beta * [(log pi(c) - log ref(c)) - (log pi(r) - log ref(r))] and how often it is positive.
Set-up and install go through the shared skeleton (prepare/finish); trl's trainer replaces the loop.
"""

from __future__ import annotations

import time

import torch

from medchat.core.profiles import Profile, ProfileStore
from trainer.modeling import NEW_ADAPTER, lora_config, save_adapter, template_of
from trainer.runs import Run
from trainer.stages.dpo.trainer import check, dpo_config, implicit_margins, to_dataset
from trainer.stages.skeleton import finish, load_preference_data, prepare


def _log_callback(run: Run):
    from transformers import TrainerCallback

    class ToRunLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:  # every rank gets on_log; only the main one writes
                run.log({"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}})

    return ToRunLog()


def run(cfg, quiet: bool = False, store: ProfileStore | None = None, **_) -> Profile | None:
    from trl import DPOTrainer

    job = prepare(cfg, "dpo", load_data=load_preference_data, store=store, quiet=quiet, check=check,
                  merge_parents=True, add_lora=False)
    cfg, tm, run = job.cfg, job.tm, job.run
    train_ex, val_ex, infos = job.data
    template = template_of(cfg, tm)
    tm.tokenizer.chat_template = template  # trl renders the pairs with the tokenizer's template
    args = dpo_config(cfg, run, tm.device, len(train_ex), bool(val_ex), quiet or not job.dist.is_main)
    probe = val_ex or train_ex
    job.say(f"dpo {cfg.model.method} (beta {cfg.dpo.beta}, {cfg.dpo.loss_type}): {len(train_ex)} train / "
            f"{len(val_ex)} val pairs, {args.max_steps} steps; run {run.dir}")
    trainer = DPOTrainer(model=tm.model, ref_model=None, args=args, train_dataset=to_dataset(train_ex),
                         eval_dataset=to_dataset(val_ex) if val_ex else None, processing_class=tm.tokenizer,
                         peft_config=lora_config(cfg), callbacks=[_log_callback(run)])
    if quiet or not job.dist.is_main:  # with tqdm off, transformers prints every log dict; trainer_log.jsonl has them
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    tm.model = trainer.model
    tm.adapter = NEW_ADAPTER
    before = implicit_margins(tm.model, tm.tokenizer, template, probe, cfg.dpo.beta, cfg.data.cutoff_len)
    resume = None
    if cfg.training.resume:
        ckpts = sorted((run.dir / "hf_checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        resume = str(ckpts[-1]) if ckpts else None
        if resume and job.dist.is_main:
            run.truncate_log(int(ckpts[-1].name.split("-")[1]))
    t0 = time.perf_counter()
    with job.guard(), torch.enable_grad():
        result = trainer.train(resume_from_checkpoint=resume)
    after = implicit_margins(tm.model, tm.tokenizer, template, probe, cfg.dpo.beta, cfg.data.cutoff_len)
    if job.dist.is_main:
        run.replace_dir("final", lambda d: save_adapter(tm, d))
    metrics = {"train_loss": float(result.training_loss), "steps": int(result.global_step),
               "runtime_s": round(time.perf_counter() - t0, 1), "train_pairs": len(train_ex), "val_pairs": len(val_ex),
               "margin_before": before["margin"], "margin_after": after["margin"],
               "reward_accuracy_after": after["accuracy"], "logp_gap_before": before["logp_gap"],
               "logp_gap_after": after["logp_gap"], "beta": cfg.dpo.beta}

    def message(profile, m):
        return (f"installed profile '{profile.name}' (dpo, chain {' > '.join(profile.chain)}): {m['steps']} steps, "
                f"implicit reward margin {m['margin_before']:.3f} -> {m['margin_after']:.3f} "
                f"({'val' if val_ex else 'train'} pairs); chat with: medchat chat -p {profile.name}")

    return finish(job, run.dir / "final", metrics, infos, message=message)
