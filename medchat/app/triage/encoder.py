"""The fine-tuned sentence encoder beside the n-gram model, for English messages.

The embedded all-MiniLM-L6-v2 (the KB's default embedder, installed with medchat) with a rank-16 LoRA
on every linear layer and the same three heads as the n-gram model (emergency, self-harm, category),
fitted on the team corpus by `encoder_fit.py`. Only the LoRA factors and the heads ship
(`data/encoder.safetensors`, about 1.5 MB in float16); the base weights come from the installed
package, and its config and weight-file size are checked against the ones the adapter was fitted on.

Why English only: the encoder's WordPiece vocabulary lacks about 15% of the corpus's Chinese
characters (嗜, 瞳, ...), and on the dev split the Chinese encoder lowered recall at a fixed false-alarm
rate, while for English the average of the two models raised it (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ENCODER_FILE = "encoder.safetensors"
MAX_TOKENS = 128  # training and inference truncate alike; longer messages are judged on their head
# Shorter messages ("hi", "ok", "hey there") are outside what the encoder was fitted on (1 in 700 of
# the English corpus has fewer than 3 words, and the first fit called "hi" self-harm): n-grams and
# rules judge them alone.
MIN_WORDS = 3


def base_signature(folder: Path) -> dict:
    """What must match between the base the adapter was fitted on and the installed one."""
    cfg = json.loads((folder / "config.json").read_text())
    return {"hidden_size": cfg["hidden_size"], "num_hidden_layers": cfg["num_hidden_layers"],
            "vocab_size": cfg["vocab_size"], "weights_bytes": (folder / "model.safetensors").stat().st_size}


class TriageEncoder:
    """probabilities(text) -> [P(emergency), P(self-harm), P(category | emergency)...], like TriageModel."""

    def __init__(self, base_folder: Path, arrays: dict, meta: dict):
        import torch

        from kb.bert_embedder import BertMeanEmbedder

        self.arrays, self.meta = arrays, meta
        self.embedder = BertMeanEmbedder(base_folder, "triage-encoder")
        self.embedder.tokenizer.enable_truncation(MAX_TOKENS)
        scale = float(meta["lora_alpha"]) / float(meta["lora_r"])
        for name in meta["lora_modules"]:  # merge W += scale * B @ A once, so a message costs one plain forward
            a = torch.from_numpy(arrays[f"{name}.lora_A"].astype(np.float32))
            b = torch.from_numpy(arrays[f"{name}.lora_B"].astype(np.float32))
            self.embedder.w[f"{name}.weight"] = self.embedder.w[f"{name}.weight"] + scale * (b @ a)
        self.head_w = torch.from_numpy(arrays["head.weight"].astype(np.float32))
        self.head_b = torch.from_numpy(arrays["head.bias"].astype(np.float32))
        self.languages = tuple(meta.get("languages", ("en",)))
        self.weight = float(meta.get("weight", 0.5))
        self.min_words = int(meta.get("min_words", MIN_WORDS))

    @classmethod
    def load(cls, data_dir: Path, meta: dict | None) -> "TriageEncoder | None":
        """The shipped encoder, or None when none was built or the installed base differs from the one it
        was fitted on (the n-gram model and the rules then decide alone)."""
        from safetensors.numpy import load_file

        from kb.embedder import default_model_dir

        base = default_model_dir()
        path = Path(data_dir) / ENCODER_FILE
        if not meta or base is None or not path.is_file() or base_signature(base) != meta.get("base"):
            return None
        return cls(base, load_file(str(path)), meta)

    def logits(self, texts: list[str]):
        import torch

        with torch.inference_mode():
            return self.embedder.pooled(texts) @ self.head_w.T + self.head_b

    def probabilities(self, text: str) -> np.ndarray:
        from medchat.app.triage.model import heads_to_probabilities

        return heads_to_probabilities(self.logits([text])[0].numpy().astype(np.float64))
