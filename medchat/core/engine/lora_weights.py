"""Reading a PEFT LoRA adapter dir into plain tensors the fast path can stack and swap.

We read the files ourselves (instead of wrapping the model with peft) because the fast path keeps
int8 base weights that peft's LoRA layers cannot wrap; the float reference path uses peft.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from medchat.core.errors import UserError
from medchat.core.profiles import ADAPTER_WEIGHTS, PICKLED_WEIGHTS

# "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight" -> (3, "q_proj", "A")
_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.[\w-]+)?\.weight$")


class UnsupportedAdapter(Exception):
    """The adapter uses a LoRA feature the fast path does not implement (the engine falls back)."""


@dataclass
class LoraModule:
    A: torch.Tensor  # (r, in)
    B: torch.Tensor  # (out, r)
    scale: float


def _alpha_for(module: str, cfg: dict) -> float:
    for pattern, alpha in (cfg.get("alpha_pattern") or {}).items():
        if re.fullmatch(rf"(.*\.)?{pattern}", module):
            return float(alpha)
    return float(cfg.get("lora_alpha", 8))


def load_lora(adapter_dir: Path, allow_pickle: bool = False) -> dict[tuple[int, str], LoraModule]:
    """Map (layer index, projection name) -> LoraModule with the scale alpha/r (or alpha/sqrt(r))."""
    adapter_dir = Path(adapter_dir)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    if cfg.get("use_dora") or cfg.get("modules_to_save") or cfg.get("bias", "none") != "none":
        raise UnsupportedAdapter("DoRA, modules_to_save or LoRA bias")
    st = adapter_dir / ADAPTER_WEIGHTS
    if st.exists():
        from safetensors.torch import load_file

        tensors = load_file(str(st))
    elif allow_pickle and (adapter_dir / PICKLED_WEIGHTS).exists():
        tensors = torch.load(adapter_dir / PICKLED_WEIGHTS, map_location="cpu", weights_only=True)
    else:
        raise UserError(f"no {ADAPTER_WEIGHTS} in '{adapter_dir}'")
    parts: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        m = _KEY.search(key)
        if not m:
            if "lora_" in key:  # e.g. LoRA on embeddings or lm_head
                raise UnsupportedAdapter(key)
            continue
        parts.setdefault((int(m.group(1)), m.group(2)), {})[m.group(3)] = value.float()
    out = {}
    for (layer, proj), ab in parts.items():
        if set(ab) != {"A", "B"}:
            raise UserError(f"corrupt adapter '{adapter_dir}': layer {layer} {proj} lacks lora_A or lora_B")
        r = ab["A"].shape[0]
        alpha = _alpha_for(f"layers.{layer}.{proj}", cfg)
        scale = alpha / (r ** 0.5) if cfg.get("use_rslora") else alpha / r
        out[(layer, proj)] = LoraModule(ab["A"], ab["B"], scale)
    if not out:
        raise UserError(f"adapter '{adapter_dir}' holds no LoRA weights for attention or MLP layers")
    return out
