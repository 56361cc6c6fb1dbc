"""The pieces of a Llama-family model the fast path runs on, from a transformers model or straight
from a model directory.

Why straight from the directory: building a transformers model costs seconds at every start (importing
its modelling code, then materialising every module), while the fast path only needs the weight
tensors, which safetensors maps from disk in milliseconds. `from_dir` reproduces transformers'
RMSNorm and default rotary embedding op for op, so both sources give the same numbers; anything it
does not cover (rope scaling, sliding windows, non-safetensors weights) returns None and the caller
loads through transformers as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
PROJECTIONS = {"self_attn": ("q_proj", "k_proj", "v_proj", "o_proj"),
               "mlp": ("gate_proj", "up_proj", "down_proj")}


@dataclass
class LlamaParts:
    config: object  # attribute access: num_attention_heads, max_position_embeddings, ...
    embed: nn.Module  # token ids -> hidden states
    rotary: nn.Module  # (x, position_ids) -> (cos, sin)
    norm: nn.Module
    head: nn.Module  # an nn.Linear-like module with .weight
    layers: list[dict] = field(default_factory=list)  # {"input_layernorm", "post_attention_layernorm", "q_proj", ...}

    @property
    def dtype(self) -> torch.dtype:
        return self.embed.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device


def supported_config(cfg) -> bool:
    return getattr(cfg, "model_type", "") in SUPPORTED_TYPES and getattr(cfg, "hidden_act", "silu") == "silu"


def from_hf(model) -> LlamaParts:
    inner = model.model
    layers = []
    for layer in inner.layers:
        parts = {"input_layernorm": layer.input_layernorm, "post_attention_layernorm": layer.post_attention_layernorm}
        for block, names in PROJECTIONS.items():
            parts.update({n: getattr(getattr(layer, block), n) for n in names})
        layers.append(parts)
    return LlamaParts(model.config, inner.embed_tokens, inner.rotary_emb, inner.norm,
                      model.get_output_embeddings(), layers)


class RMSNorm(nn.Module):
    """transformers' LlamaRMSNorm, op for op (float32 statistics, weight applied in the input dtype)."""

    def __init__(self, weight: torch.Tensor, eps: float):
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class DefaultRotary(nn.Module):
    """transformers' default ('rope_type: default') rotary embedding, op for op."""

    def __init__(self, theta: float, dim: int, device):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        self.register_buffer("inv_freq", inv_freq.to(device), persistent=False)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor):
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype=x.dtype), emb.sin().to(dtype=x.dtype)


def _rope_theta(cfg: dict) -> float | None:
    """The base frequency when the config asks for plain RoPE; None for any scaled variant."""
    params = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling") or {}
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default" or cfg.get("partial_rotary_factor", 1.0) != 1.0:
        return None
    theta = params.get("rope_theta", cfg.get("rope_theta", 10000.0))
    return float(theta)


def _weight_files(model_dir: Path) -> list[Path] | None:
    single = model_dir / "model.safetensors"
    if single.is_file():
        return [single]
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [model_dir / s for s in shards]
        return files if all(f.is_file() for f in files) else None
    return None


class Linear(nn.Module):
    """nn.Linear around given weights. nn.Linear's own constructor initialises random weights first
    (and on the meta device that pulls in torch._dynamo: over a second at start-up)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class Embedding(nn.Module):
    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


def from_dir(model_dir: Path, dtype: torch.dtype, device: str) -> LlamaParts | None:
    """LlamaParts read from config.json + safetensors, or None when this loader does not cover the model."""
    model_dir = Path(model_dir)
    try:
        cfg = json.loads((model_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    files = _weight_files(model_dir)
    theta = _rope_theta(cfg)
    if (files is None or theta is None or not supported_config(SimpleNamespace(**cfg))
            or cfg.get("sliding_window") and cfg.get("use_sliding_window") or cfg.get("quantization_config")):
        return None
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        tensors.update(load_file(str(f)))

    def take(name: str) -> torch.Tensor | None:
        t = tensors.get(name)
        return None if t is None else t.to(device=device, dtype=dtype)

    n_layers, heads = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    eps = float(cfg.get("rms_norm_eps", 1e-6))
    embed_w = take("model.embed_tokens.weight")
    if embed_w is None:
        return None
    layers = []
    for i in range(n_layers):
        pre = f"model.layers.{i}."
        parts = {"input_layernorm": RMSNorm(take(pre + "input_layernorm.weight"), eps),
                 "post_attention_layernorm": RMSNorm(take(pre + "post_attention_layernorm.weight"), eps)}
        for block, names in PROJECTIONS.items():
            for n in names:
                w = take(f"{pre}{block}.{n}.weight")
                if w is None:
                    return None
                parts[n] = Linear(w, take(f"{pre}{block}.{n}.bias"))
        layers.append(parts)
    head_w = embed_w if cfg.get("tie_word_embeddings", False) else take("lm_head.weight")
    if head_w is None:
        return None
    config = SimpleNamespace(**{**cfg, "head_dim": head_dim,
                                "num_key_value_heads": cfg.get("num_key_value_heads") or heads})
    return LlamaParts(config, Embedding(embed_w), DefaultRotary(theta, head_dim, device),
                      RMSNorm(take("model.norm.weight"), eps), Linear(head_w), layers)
