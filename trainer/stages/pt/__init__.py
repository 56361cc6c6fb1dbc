"""Stage pt (continued pre-training): `run(cfg, **kwargs)` in workflow.py."""

from trainer.stages.pt.workflow import run

__all__ = ["run"]
