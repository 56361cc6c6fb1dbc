"""A sentence-transformers BERT folder with mean pooling (the default all-MiniLM-L6-v2), run directly
on torch and `tokenizers`.

Why not sentence-transformers here: importing it costs 5-6 s at every chat start on the 2-core CPU
(the whole KB search is ~10 ms). What it computes for this kind of folder — WordPiece tokens
truncated to `max_seq_length`, a BERT encoder, the mean of the token vectors under the attention
mask, L2 normalisation — is small and fixed, and tests hold this module to sentence-transformers'
own output. Any other folder (another architecture, pooling or extra modules) still loads through
sentence-transformers (`kb.embedder`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

MODULES = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
           "sentence_transformers.models.Normalize"]


def supported(folder: Path) -> bool:
    """True for a BERT (absolute positions, GELU) + mean pooling + normalise folder with safetensors
    weights and a fast-tokenizer file."""
    folder = Path(folder)
    try:
        modules = [m["type"] for m in json.loads((folder / "modules.json").read_text())]
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return False
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    return (modules == MODULES and modes == {"pooling_mode_mean_tokens"} and cfg.get("model_type") == "bert"
            and cfg.get("hidden_act") == "gelu" and cfg.get("position_embedding_type", "absolute") == "absolute"
            and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file())


class BertMeanEmbedder:
    """encode(texts) -> unit-length float32 rows, as SentenceTransformer(folder).encode(..., normalize_embeddings=True)."""

    def __init__(self, folder: Path, embedder_id: str):
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.id = embedder_id
        cfg = json.loads((folder / "config.json").read_text())
        st_cfg = {}
        if (folder / "sentence_bert_config.json").is_file():
            st_cfg = json.loads((folder / "sentence_bert_config.json").read_text())
        tok_cfg = json.loads((folder / "tokenizer_config.json").read_text()) if (folder / "tokenizer_config.json").is_file() else {}
        limit = min(int(st_cfg.get("max_seq_length") or 512), int(tok_cfg.get("model_max_length") or 512),
                    int(cfg["max_position_embeddings"]))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(limit)
        self.tokenizer.no_padding()
        self.w = {k.removeprefix("bert."): v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
        self.layers = int(cfg["num_hidden_layers"])
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.pad_id = int(cfg.get("pad_token_id") or 0)
        self.dim = int(cfg["hidden_size"])
        self._torch = torch

    def encode(self, texts: list[str], batch_size: int = 64):
        import numpy as np

        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype="float32")
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths pad little
        with self._torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                pooled = self.pooled([texts[i] for i in rows])
                out[rows] = self._torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
        return out

    def pooled(self, texts: list[str]):
        """The mean of the last layer's token vectors under the attention mask (before normalisation), as a
        torch tensor (n, dim); differentiable with respect to `self.w` outside inference mode."""
        torch, w = self._torch, self.w
        F = torch.nn.functional
        encs = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encs)
        ids = torch.full((len(encs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encs), width), dtype=torch.bool)
        for i, e in enumerate(encs):
            ids[i, :len(e.ids)] = torch.tensor(e.ids)
            mask[i, :len(e.ids)] = True

        def ln(x, name):
            return F.layer_norm(x, (x.shape[-1],), w[f"{name}.weight"], w[f"{name}.bias"], self.eps)

        def lin(x, name):
            return F.linear(x, w[f"{name}.weight"], w[f"{name}.bias"])

        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:width]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = ln(x, "embeddings.LayerNorm")
        b, n, h = x.shape[0], width, self.heads
        d = self.dim // h
        attn_mask = mask[:, None, None, :]
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (lin(x, p + f"attention.self.{m}").view(b, n, h, d).transpose(1, 2)
                       for m in ("query", "key", "value"))
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=1 / math.sqrt(d))
            x = ln(lin(ctx.transpose(1, 2).reshape(b, n, self.dim), p + "attention.output.dense") + x,
                   p + "attention.output.LayerNorm")
            x = ln(lin(F.gelu(lin(x, p + "intermediate.dense")), p + "output.dense") + x, p + "output.LayerNorm")
        m = mask.unsqueeze(-1).float()
        return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
