"""The causal-LM workflow that pt and sft share (not a stage of its own: no registry entry).

    profile = train(cfg)                       # cfg.stage in ("pt", "sft")
    train_ex, val_ex, infos, skipped = load_causal_data(cfg)

workflow.py: data -> model -> TrainLoop (trainer.stages.loop, whose default loss is the causal one)
-> validated install. Only pt and sft may import it (import-linter, pyproject.toml).
"""

from trainer.stages.causal.workflow import load_causal_data, train

__all__ = ["train", "load_causal_data"]
