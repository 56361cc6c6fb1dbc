"""The skeleton every stage follows: `prepare()` -> the stage's own training -> `finish()`.

    job = prepare(cfg, "rm", store=store, load_data=load_preference_data, task="seq_cls", merge_parents=True)
    job.cfg, job.data, job.tm, job.run, job.dist, job.store   # resolved config, data, model, run dir, ranks
    with job.guard():                                         # status interrupted/failed, resume hint
        ...train (trainer.stages.loop.TrainLoop, or trl, or the PPO loop)...
    profile = finish(job, adapter_dir, metrics, infos, kind="reward", message=lambda p, m: "...")

prepare: --resume (the run's own saved config), validation and the stage's own checks, a free
profile name (preflight), datasets, the seed, the model with its parent chain (one loader,
trainer.modeling.load_for_training: stacked for pt/sft, merged for rm/ppo/dpo), and the run dir -
created by the main rank only and shared with the others (trainer.dist).
finish: metrics rounded, dataset records, the main rank alone validates and installs the adapter
atomically, writes summary.json and status "installed", then every rank meets at a barrier; the
non-main ranks return None.

Also here, because more than one stage uses them: split_val, load_preference_data, resolve_resume.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Callable

from medchat.core.errors import UserError
from medchat.core.profiles import Profile, ProfileStore
from trainer.dist import Dist
from trainer.install import install_adapter, preflight
from trainer.runs import Run

MIN_ROWS_FOR_SPLIT = 10
DATASET_KEYS = ("name", "sha256", "rows", "split")


# --- helpers shared by several stages ----------------------------------------------------------
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
    if int(os.environ.get("RANK", "0")) == 0:
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


def load_preference_data(cfg) -> tuple[list, list, list[dict]]:
    """(train examples, val examples, manifest infos) for the pairwise stages (rm, dpo)."""
    from trainer.data import dataset_dir_of
    from trainer.data.pairwise import load_pairs

    ddir = dataset_dir_of(cfg)
    d = cfg.data
    train, infos = load_pairs(d.datasets, ddir, d.skip_bad, d.max_samples)
    if d.val_dataset:
        val, val_infos = load_pairs(d.val_dataset, ddir, d.skip_bad, d.max_samples)
        infos += [{**i, "split": "val"} for i in val_infos]
    else:
        train, val = split_val(train, d.val_size, cfg.training.seed)
    return train, val, infos


# --- prepare / finish ---------------------------------------------------------------------------
@dataclass
class Job:
    cfg: object
    store: ProfileStore
    dist: Dist
    data: object
    tm: object
    run: Run
    quiet: bool = False

    def say(self, text: str) -> None:
        if self.dist.is_main:
            print(text, file=sys.stderr, flush=True)

    def resume_cmd(self) -> str:
        return f"medchat train --stage {self.cfg.stage} --resume {self.run.dir} --name {self.cfg.name}"

    def guard(self):
        return self.run.guard(self.resume_cmd(), self.say, main=self.dist.is_main)


def shared_run(dist: Dist, cfg, run: Run | None) -> Run:
    """Every rank uses the same run dir: the main rank creates it (unless resuming) and broadcasts it."""
    if run is None and dist.is_main:
        run = Run.create(cfg)
    path = dist.broadcast(str(run.dir) if run is not None else None)
    return run if run is not None and str(run.dir) == path else Run(path)


def prepare(cfg, stage: str, *, load_data: Callable, store: ProfileStore | None = None, quiet: bool = False,
            check: Callable | None = None, task: str = "causal", merge_parents: bool = False,
            add_lora: bool = True, device: str | None = None) -> Job:
    """Config, resume, checks, datasets, model (with its parent chain) and the run dir, in that order."""
    import torch

    from trainer.modeling import load_for_training

    cfg.stage = stage
    cfg, run = resolve_resume(cfg)
    cfg.validate()
    if check is not None:
        check(cfg)
    preflight(cfg, store)
    store = store or ProfileStore()
    dist = Dist.from_env(cfg.model.device or None)
    data = load_data(cfg)
    torch.manual_seed(cfg.training.seed)  # the new adapter's (and head's) initial weights
    tm = load_for_training(cfg, device=device or dist.device, task=task, store=store,
                           merge_parents=merge_parents, add_lora=add_lora)
    run = shared_run(dist, cfg, run)
    if dist.is_main:
        run.set_status("running")
    return Job(cfg=cfg, store=store, dist=dist, data=data, tm=tm, run=run, quiet=quiet)


def finish(job: Job, adapter_dir, metrics: dict, infos: list[dict], *, kind: str = "chat",
           dataset_keys: tuple = DATASET_KEYS, summary: dict | None = None,
           message: Callable[[Profile, dict], str] | None = None) -> Profile | None:
    """Round the metrics, install on the main rank only (validated, atomic), write the summary; barrier."""
    metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items() if v is not None}
    if not job.dist.is_main:
        job.dist.barrier()
        return None
    datasets = [{k: v for k, v in i.items() if k in dataset_keys} for i in infos]
    profile = install_adapter(job.cfg, job.tm, adapter_dir, datasets, metrics, kind=kind, store=job.store)
    job.run.write_summary({"profile": profile.name, "chain": profile.chain, "metrics": metrics, "datasets": infos,
                           **(summary or {})})
    job.run.set_status("installed", profile=profile.name)
    job.dist.barrier()
    if message is not None:
        print(message(profile, metrics), flush=True)
    return profile
