"""Stage dpo (trl's DPOTrainer): `run(cfg, **kwargs)` in workflow.py; trl config, data and margins in trainer.py."""

from trainer.stages.dpo.trainer import LOSS_TYPES, implicit_margins, loss_types, reply_logps
from trainer.stages.dpo.workflow import run

__all__ = ["run", "LOSS_TYPES", "loss_types", "reply_logps", "implicit_margins"]
