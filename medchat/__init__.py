"""medchat: a private, offline doctor-style chat that fine-tunes its own models.

The seam every other room uses: `medchat.engine` (chat generation over a resident base model
with hot-swappable LoRA adapters) and `medchat.profiles` (the store of installed profiles).
"""

__version__ = "0.1.0"
