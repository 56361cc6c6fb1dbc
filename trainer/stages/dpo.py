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

from medchat.core.errors import UserError
from medchat.core.profiles import Profile, ProfileStore
from trainer.data.pairwise import conversation
from trainer.modeling import NEW_ADAPTER, lora_config, save_adapter, template_of
from trainer.runs import Run
from trainer.stages.skeleton import finish, load_preference_data, prepare


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


def _dataset(examples):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": ex.chat(), "chosen": [{"role": "assistant", "content": ex.chosen}],
                               "rejected": [{"role": "assistant", "content": ex.rejected}]} for ex in examples])


def _log_callback(run: Run):
    from transformers import TrainerCallback

    class ToRunLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:  # every rank gets on_log; only the main one writes
                run.log({"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}})

    return ToRunLog()


def _config(cfg, run: Run, device: str, n_train: int, has_val: bool, quiet: bool):
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


def _check(cfg) -> None:
    if cfg.dpo.beta <= 0:
        raise UserError("--dpo-beta must be > 0")
    loss_types(cfg.dpo.loss_type)


def run(cfg, quiet: bool = False, store: ProfileStore | None = None, **_) -> Profile | None:
    from trl import DPOTrainer

    job = prepare(cfg, "dpo", load_data=load_preference_data, store=store, quiet=quiet, check=_check,
                  merge_parents=True, add_lora=False)
    cfg, tm, run = job.cfg, job.tm, job.run
    train_ex, val_ex, infos = job.data
    template = template_of(cfg, tm)
    tm.tokenizer.chat_template = template  # trl renders the pairs with the tokenizer's template
    args = _config(cfg, run, tm.device, len(train_ex), bool(val_ex), quiet or not job.dist.is_main)
    probe = val_ex or train_ex
    job.say(f"dpo {cfg.model.method} (beta {cfg.dpo.beta}, {cfg.dpo.loss_type}): {len(train_ex)} train / "
            f"{len(val_ex)} val pairs, {args.max_steps} steps; run {run.dir}")
    trainer = DPOTrainer(model=tm.model, ref_model=None, args=args, train_dataset=_dataset(train_ex),
                         eval_dataset=_dataset(val_ex) if val_ex else None, processing_class=tm.tokenizer,
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
