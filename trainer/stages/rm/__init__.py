"""Stage rm (reward model): `run(cfg, **kwargs)` in workflow.py; batch, loss and eval in trainer.py."""

from trainer.stages.rm.trainer import evaluate, pair_loss
from trainer.stages.rm.workflow import run

__all__ = ["run", "evaluate", "pair_loss"]
