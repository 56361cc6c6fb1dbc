"""The value head: one linear layer on the policy's last hidden state, trained jointly with the LoRA.

It is a training-time device only (the installed profile is just the policy adapter), so it is saved
in the run dir next to the checkpoints, not in the profile.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

FILE = "value_head.safetensors"


class ValueHead(nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        # zero init: values start at 0, so the first advantages are the (whitened) returns themselves
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)

    def save(self, folder: Path) -> Path:
        from safetensors.torch import save_file

        path = Path(folder) / FILE
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(path))
        return path

    def load(self, folder: Path) -> "ValueHead":
        from safetensors.torch import load_file

        self.load_state_dict(load_file(str(Path(folder) / FILE)))
        return self
