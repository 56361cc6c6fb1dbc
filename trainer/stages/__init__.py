"""The stage registry and dispatcher: `run_stage(cfg, **kwargs) -> Profile | None`.

Every stage is one folder trainer/stages/<name>/ (in the spirit of LLaMA-Factory's
train/<stage>/{workflow,trainer}.py): workflow.py has `run(cfg, **kwargs) -> Profile | None` (None
on non-main ranks) built on the shared skeleton (trainer.stages.skeleton: prepare -> the stage's
training -> finish); trainer.py has the stage's own batch/loss/eval functions (or, for dpo, the
pieces around trl's trainer); the package's __init__ re-exports run. Shared blocks beside them:
skeleton.py, loop.py (the one TrainLoop) and causal/ (the workflow pt and sft share).
STAGES below is the one list of stage names: the config check, `medchat data check --stage` and the
dataset loader read it.

Adding a stage (GRPO, KTO, ORPO...) = one new folder trainer/stages/<name>/ + one entry in STAGES
(+ its name in the two stage contracts of pyproject.toml, which a unit test checks). Stages never
import each other (import-linter contracts in pyproject.toml check it)."""

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
