"""Stage sft (supervised fine-tuning): `run(cfg, **kwargs)` in workflow.py."""

from trainer.stages.sft.workflow import run

__all__ = ["run"]
