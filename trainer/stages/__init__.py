"""Stage dispatcher: `run_stage(cfg, **kwargs) -> Profile` imports trainer.stages.<cfg.stage> lazily.

Every stage module exposes `run(cfg: TrainConfig, **kwargs) -> Profile | None` (None on non-main
DDP ranks). pt and sft live here (trainer.stages.causal); rm, ppo and dpo are their own modules.
"""

from __future__ import annotations

import importlib

from medchat.core.errors import UserError

STAGE_MODULES = {"pt": "trainer.stages.pt", "sft": "trainer.stages.sft", "rm": "trainer.stages.rm",
                 "ppo": "trainer.stages.ppo", "dpo": "trainer.stages.dpo"}


def run_stage(cfg, **kwargs):
    name = STAGE_MODULES.get(cfg.stage)
    if name is None:
        raise UserError(f"unknown --stage '{cfg.stage}'; use one of {', '.join(STAGE_MODULES)}")
    return importlib.import_module(name).run(cfg, **kwargs)
