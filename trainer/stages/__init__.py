"""The stage registry and dispatcher: `run_stage(cfg, **kwargs) -> Profile | None`.

Every stage is one module under trainer/stages/ exposing `run(cfg, **kwargs) -> Profile | None`
(None on non-main ranks) and built on the shared skeleton (trainer.stages.skeleton: prepare ->
the stage's training -> finish). STAGES below is the one list of stage names: the config check,
`medchat data check --stage` and the dataset loader read it. Adding a stage = one module + one entry.
Stages never import each other (an import-linter contract in pyproject.toml checks it).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from medchat.core.errors import UserError


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    data: str        # what its datasets hold: "text" (pt), "chat" (sft), "pairs" (rm, dpo), "prompts" (ppo)
    summary: str


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("pt", "trainer.stages.pt", "text", "continued pre-training: next-token loss on all text"),
    Stage("sft", "trainer.stages.sft", "chat", "supervised fine-tuning: loss on assistant replies"),
    Stage("rm", "trainer.stages.rm", "pairs", "reward model: pairwise loss on chosen/rejected replies"),
    Stage("ppo", "trainer.stages.ppo", "prompts", "PPO against a reward profile"),
    Stage("dpo", "trainer.stages.dpo", "pairs", "direct preference optimisation (trl's DPOTrainer)"),
)}
STAGE_NAMES = tuple(STAGES)
STAGE_MODULES = {name: s.module for name, s in STAGES.items()}  # kept for callers of the old name


def stages_with_data(kind: str) -> tuple[str, ...]:
    return tuple(name for name, s in STAGES.items() if s.data == kind)


def run_stage(cfg, **kwargs):
    stage = STAGES.get(cfg.stage)
    if stage is None:
        raise UserError(f"unknown --stage '{cfg.stage}'; use one of {', '.join(STAGES)}")
    return importlib.import_module(stage.module).run(cfg, **kwargs)
