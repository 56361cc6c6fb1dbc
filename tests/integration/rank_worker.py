"""One rank of the 2-process (gloo, CPU) stage test: trains sft, rm, dpo and ppo in a row (tiny model,
2 steps each). Run by torch.multiprocessing.spawn from test_stages_ranks.py."""

from __future__ import annotations

import json
import os
from pathlib import Path


def reply_length(conversations):
    return [float(len(c[-1]["content"])) for c in conversations]


def worker(rank: int, world: int, port: int, home: str, model_dir: str, data_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), MEDCHAT_HOME=home, OMP_NUM_THREADS="1")
    import torch

    torch.set_num_threads(1)
    from test_ppo_helpers import small_cfg

    from trainer.stages import run_stage

    data = Path(data_dir)
    common = {"model.base": model_dir, "training.max_steps": 2, "training.batch_size": 2, "training.save_steps": 1,
              "training.learning_rate": 1e-3, "lora.r": 4}
    results = {}
    stages = [
        ("sft", "r-sft", {"data.datasets": str(data / "sft.json"), "data.val_size": 0}),
        ("rm", "r-rm", {"data.datasets": str(data / "pairs_train.jsonl"), "data.val_dataset": str(data / "pairs_val.jsonl"),
                        "model.from_profile": "r-sft"}),
        ("dpo", "r-dpo", {"data.datasets": str(data / "pairs_train.jsonl"), "model.from_profile": "r-sft"}),
        ("ppo", "r-ppo", {"data.datasets": str(data / "pairs_train.jsonl"), "model.from_profile": "r-sft",
                          "ppo.steps": 2, "ppo.rollout_batch_size": 2, "ppo.mini_batch_size": 2,
                          "ppo.max_new_tokens": 4, "ppo.ppo_epochs": 1}),
    ]
    for stage, name, over in stages:
        cfg = small_cfg(stage, name, **{**common, **over})
        profile = run_stage(cfg, quiet=True, reward_fn=reply_length) if stage == "ppo" else \
            run_stage(cfg, quiet=True)
        results[stage] = None if profile is None else {"name": profile.name, "metrics": profile.metrics}
    (Path(home) / f"rank{rank}.json").write_text(json.dumps(results))
    import torch.distributed as td

    if td.is_initialized():
        td.destroy_process_group()
