"""Supervised fine-tuning (stage sft): loss on assistant replies only (see trainer.data.encoding).

Packing is off by default (--packing turns it on, without attention across samples). The steps are
the shared causal-LM workflow (trainer.stages.causal).
"""

from __future__ import annotations


def run(cfg, **kwargs):
    from trainer.stages.causal import train

    cfg.stage = "sft"
    return train(cfg, **kwargs)
