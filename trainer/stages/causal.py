"""Causal-LM fine-tuning (pt and sft): data -> model -> TrainLoop -> validated install.

    profile = train(cfg, quiet=False, on_step=None)   # cfg.stage in ("pt", "sft")

Validation split: an explicit --val-dataset wins; otherwise --val-size (a fraction < 1 or a count
>= 1) of the training *examples* (before chunking, so nothing leaks) is held out, with a seeded
shuffle; datasets under 10 examples are not split. With eval on, the adapter installed is the one
with the lowest eval loss (run/best); without, the last one (run/final).
"""

from __future__ import annotations

import math
import os
import sys

from medchat.core.errors import UserError
from medchat.core.profiles import Profile
from trainer.data import dataset_dir_of, load_datasets
from trainer.data.encoding import encode_examples
from trainer.install import install_adapter, preflight
from trainer.runs import Run

MIN_ROWS_FOR_SPLIT = 10


def make_accelerator(cfg):
    from accelerate import Accelerator

    from medchat.core.models import pick_device

    device = pick_device(cfg.model.device or None)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # a recipe may change precision between stages
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(True)
    mp = "bf16" if cfg.training.bf16 else "fp16" if cfg.training.fp16 else "no"
    return Accelerator(cpu=device == "cpu", mixed_precision=mp)


def resolve_resume(cfg):
    """(cfg, run): on --resume, the run's own saved config is used so it reaches the same result."""
    run = Run.for_resume(cfg)
    if run is None:
        return cfg, None
    state = run.status().get("state")
    if state == "installed":
        raise UserError(f"run {run.dir} already finished and was installed as profile '{run.config().name}'")
    saved = run.config()
    saved.training.resume = str(run.dir)
    print(f"resuming {run.dir} with its saved config.yaml (other options on the command line are ignored)",
          file=sys.stderr, flush=True)
    return saved, run


def split_val(examples: list, val_size: float, seed: int) -> tuple[list, list]:
    import random

    n = len(examples)
    if val_size <= 0 or n < MIN_ROWS_FOR_SPLIT:
        return examples, []
    k = int(val_size) if val_size >= 1 else max(1, int(math.floor(n * val_size)))
    k = min(k, n - 1)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = set(order[:k])
    return [e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held]


def _say(acc, text: str) -> None:
    if acc.is_main_process:
        print(text, file=sys.stderr, flush=True)


def _shared_run(acc, cfg, run):
    """Every process must use the same run dir: the main one creates it and broadcasts the path."""
    if run is None and acc.is_main_process:
        run = Run.create(cfg)
    if acc.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        box = [str(run.dir) if run is not None else None]
        broadcast_object_list(box)
        run = Run(box[0])
    return run


def train(cfg, quiet: bool = False, on_step=None, store=None) -> Profile | None:
    import torch

    from trainer.modeling import load_for_training
    from trainer.stages.loop import TrainLoop

    cfg, run = resolve_resume(cfg)
    cfg.validate()
    if cfg.stage not in ("pt", "sft"):
        raise UserError(f"--stage {cfg.stage} is not a causal-LM stage")
    preflight(cfg, store)
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
    acc = make_accelerator(cfg)
    if skipped:
        _say(acc, f"skipped {len(skipped)} bad rows (--skip-bad); first: {skipped[0]}")
    torch.manual_seed(cfg.training.seed)  # the new adapter's initial weights
    tm = load_for_training(cfg, device=str(acc.device), store=store)
    opts = dict(cutoff_len=data.cutoff_len, template=data.template, train_on_prompt=data.train_on_prompt,
                last_turn_only=data.last_turn_only)
    train_s, stats = encode_examples(tm.tokenizer, train_ex, cfg.stage, **opts)
    val_s = encode_examples(tm.tokenizer, val_ex, cfg.stage, **opts)[0] if val_ex else []
    run = _shared_run(acc, cfg, run)
    packing = cfg.packing_enabled()
    _say(acc, f"{cfg.stage} {cfg.model.method}: {len(train_s)} train / {len(val_s)} val samples, "
              f"{stats.tokens} tokens ({stats.trained_tokens} trained), {stats.truncated} truncated, "
              f"{stats.too_long_dropped} dropped as too long; packing {'on' if packing else 'off'}; run {run.dir}")
    if acc.is_main_process:
        run.set_status("running", pid=None)
    loop = TrainLoop(cfg, tm, run, train_s, val_s, acc, packing, quiet=quiet, on_step=on_step)
    resume = f"medchat train --stage {cfg.stage} --resume {run.dir} --name {cfg.name}"
    with run.guard(resume, lambda text: _say(acc, text), main=acc.is_main_process):
        result = loop.fit()
    if not acc.is_main_process:
        acc.wait_for_everyone()
        return None
    metrics = {"train_loss": result.train_loss, "eval_loss": result.eval_loss, "best_step": result.best_step,
               "final_eval_loss": result.final_eval_loss, "steps": result.step, "tokens": result.tokens,
               "runtime_s": round(result.runtime_s, 1), "train_samples": len(train_s), "val_samples": len(val_s),
               "skipped_rows": len(skipped), "too_long_dropped": stats.too_long_dropped}
    metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items() if v is not None}
    datasets = [{k: v for k, v in i.items() if k in ("name", "sha256", "rows", "split")} for i in infos]
    profile = install_adapter(cfg, tm, result.adapter_dir, datasets, metrics, store=store)
    run.write_summary({"profile": profile.name, "chain": profile.chain, "metrics": metrics, "datasets": infos,
                       "skipped": skipped})
    run.set_status("installed", profile=profile.name)
    acc.wait_for_everyone()
    ev = f", eval loss {result.eval_loss:.4f} (best, step {result.best_step})" if result.eval_loss is not None else ""
    print(f"installed profile '{profile.name}' ({cfg.stage} {cfg.model.method}, chain {' > '.join(profile.chain)}): "
          f"{result.step} steps, train loss {result.train_loss:.4f}{ev}, {result.tokens} tokens in "
          f"{result.runtime_s:.0f}s; run {run.dir}; chat with: medchat chat -p {profile.name}", flush=True)
    return profile
