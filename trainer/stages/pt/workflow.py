"""Continued pre-training (stage pt): next-token loss on every text token; packing on by default.

Text is split into --cutoff-len chunks, each chunk its own sample; short samples are packed into one
row without attention across their boundaries (see trainer.data.packing). The steps are the shared
causal-LM workflow (trainer.stages.causal), which pt and sft differ in only by encoding.
"""

from __future__ import annotations


def run(cfg, **kwargs):
    from trainer.stages.causal import train

    cfg.stage = "pt"
    return train(cfg, **kwargs)
