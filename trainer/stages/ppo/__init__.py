"""Stage ppo (RLHF on top of peft): `run(cfg, **kwargs)` in workflow.py.

core.py (pure PPO math), rollout.py (sampling and scoring replies), value_head.py, trainer.py
(PPOTrainer: rollout -> reward -> clipped updates, no files) and workflow.py (the stage on the skeleton).
"""

from trainer.stages.ppo.workflow import run

__all__ = ["run"]
