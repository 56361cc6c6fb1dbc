"""Causal-LM fine-tuning (pt and sft): data -> model -> TrainLoop -> validated install.

    profile = train(cfg, quiet=False, on_step=None)   # cfg.stage in ("pt", "sft")

Validation split: an explicit --val-dataset wins; otherwise --val-size (a fraction < 1 or a count
>= 1) of the training *examples* (before chunking, so nothing leaks) is held out, with a seeded
shuffle; datasets under 10 examples are not split. With eval on, the adapter installed is the one
with the lowest eval loss (run/best); without, the last one (run/final).
"""

from __future__ import annotations

from medchat.core.errors import UserError
from medchat.core.profiles import Profile
from trainer.data import dataset_dir_of, load_datasets
from trainer.data.encoding import encode_examples
from trainer.stages.skeleton import finish, prepare, split_val


def _check(cfg) -> None:
    if cfg.stage not in ("pt", "sft"):
        raise UserError(f"--stage {cfg.stage} is not a causal-LM stage")


def load_causal_data(cfg):
    """(train examples, val examples, dataset infos, skipped rows)."""
    data = cfg.data
    ddir = dataset_dir_of(cfg)
    train_ex, infos, skipped = load_datasets(data.datasets, ddir, cfg.stage, data.skip_bad, data.max_samples)
    if data.val_dataset:
        val_ex, val_infos, val_skipped = load_datasets(data.val_dataset, ddir, cfg.stage, data.skip_bad,
                                                       data.max_samples)
        infos += [{**i, "split": "val"} for i in val_infos]
        skipped += val_skipped
    else:
        train_ex, val_ex = split_val(train_ex, data.val_size, cfg.training.seed)
    return train_ex, val_ex, infos, skipped


def train(cfg, stage: str | None = None, quiet: bool = False, on_step=None, store=None) -> Profile | None:
    from trainer.stages.loop import TrainLoop, make_accelerator

    job = prepare(cfg, stage or cfg.stage, load_data=load_causal_data, store=store, quiet=quiet, check=_check)
    cfg, tm, run, data = job.cfg, job.tm, job.run, cfg.data
    train_ex, val_ex, infos, skipped = job.data
    acc = make_accelerator(cfg)
    if skipped:
        job.say(f"skipped {len(skipped)} bad rows (--skip-bad); first: {skipped[0]}")
    opts = dict(cutoff_len=data.cutoff_len, template=data.template, train_on_prompt=data.train_on_prompt,
                last_turn_only=data.last_turn_only)
    train_s, stats = encode_examples(tm.tokenizer, train_ex, cfg.stage, **opts)
    val_s = encode_examples(tm.tokenizer, val_ex, cfg.stage, **opts)[0] if val_ex else []
    packing = cfg.packing_enabled()
    job.say(f"{cfg.stage} {cfg.model.method}: {len(train_s)} train / {len(val_s)} val samples, "
            f"{stats.tokens} tokens ({stats.trained_tokens} trained), {stats.truncated} truncated, "
            f"{stats.too_long_dropped} dropped as too long; packing {'on' if packing else 'off'}; run {run.dir}")
    loop = TrainLoop(cfg, tm, run, train_s, val_s, acc, packing, quiet=quiet, on_step=on_step)
    with job.guard():
        result = loop.fit()
    metrics = {"train_loss": result.train_loss, "eval_loss": result.eval_loss, "best_step": result.best_step,
               "final_eval_loss": result.final_eval_loss, "steps": result.step, "tokens": result.tokens,
               "runtime_s": round(result.runtime_s, 1), "train_samples": len(train_s), "val_samples": len(val_s),
               "skipped_rows": len(skipped), "too_long_dropped": stats.too_long_dropped}

    def message(profile, m):
        ev = (f", eval loss {result.eval_loss:.4f} (best, step {result.best_step})"
              if result.eval_loss is not None else "")
        return (f"installed profile '{profile.name}' ({cfg.stage} {cfg.model.method}, chain "
                f"{' > '.join(profile.chain)}): {result.step} steps, train loss {result.train_loss:.4f}{ev}, "
                f"{result.tokens} tokens in {result.runtime_s:.0f}s; run {run.dir}; chat with: medchat chat -p "
                f"{profile.name}")

    return finish(job, result.adapter_dir, metrics, infos, summary={"skipped": skipped}, message=message)
