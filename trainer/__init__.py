"""medchat's trainer: fine-tune LoRA/QLoRA adapters locally and install them as chat profiles.

Entry points: `trainer.cli.register` (the `medchat train` / `medchat data` commands),
`trainer.stages.run_stage(cfg)`, and the building blocks in trainer.config, trainer.modeling,
trainer.data, trainer.runs and trainer.install. Never imports the TUI.
"""
