"""The general decode path: any transformers causal LM (incl. 4/8-bit bitsandbytes) + peft adapters.

Used when the fast path does not apply (other architectures, quantized loads, LoRA features the
fast path lacks). Same protocol as FastLlama, with transformers' DynamicCache for prefix reuse.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch


def cache_kwarg(model) -> str:
    """The name forward takes the KV cache by: transformers 5.24 renamed past_key_values to cache (the
    old name warns on every call and goes in 5.40); older versions know only past_key_values."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def returned_cache(out):
    """The KV cache a forward returned, under either name."""
    return out["cache"] if "cache" in out else out.past_key_values


class HFBackend:
    kind = "transformers"

    def __init__(self, model):
        self.model = model
        self.cache_kw = cache_kwarg(model)  # once: forward's signature does not change
        self.device = next(model.parameters()).device
        self.peft = None  # PeftModel once the first adapter is loaded
        self.active: list[str] = []
        self.reset()

    def load_adapter(self, name: str, adapter_dir: Path, allow_pickle: bool = False) -> None:
        from peft import PeftModel

        if self.peft is None:
            self.peft = PeftModel.from_pretrained(self.model, str(adapter_dir), adapter_name=name,
                                                  use_safetensors=not allow_pickle)
            self.peft.eval()
        elif name not in self.peft.peft_config:
            try:
                self.peft.load_adapter(str(adapter_dir), adapter_name=name, use_safetensors=not allow_pickle)
            except Exception:  # peft registers the adapter before loading it: drop the half-loaded one
                if name in self.peft.peft_config:
                    self.peft.delete_adapter(name)
                raise

    def hf_model(self):
        """The model generation runs on: peft-wrapped once an adapter is loaded."""
        return self.peft if self.peft is not None else self.model

    def set_chain(self, chain: list[tuple[str, Path]], allow_pickle: bool = False) -> None:
        for name, path in chain:
            self.load_adapter(name, path, allow_pickle)
        names = [n for n, _ in chain]
        if names == self.active:
            return
        if self.peft is not None:
            if names:
                self.peft.base_model.enable_adapter_layers()
                # peft activates several adapters at once for LoRA: their deltas add up, as in a merge
                self.peft.base_model.set_adapter(names)
            else:
                self.peft.base_model.disable_adapter_layers()
        self.active = names
        self.reset()

    def reset(self) -> None:
        from transformers import DynamicCache

        self.cached_ids: list[int] = []
        self._cache = DynamicCache()

    def truncate(self, n: int) -> None:
        if n < len(self.cached_ids):
            # a negative count removes that many tokens in every transformers version (5.x refuses n > 0)
            self._cache.crop(n - len(self.cached_ids))
            del self.cached_ids[n:]

    @torch.inference_mode()
    def forward(self, ids: list[int]) -> torch.Tensor:
        model = self.hf_model()
        inp = torch.tensor([ids], device=self.device)
        out = model(input_ids=inp, use_cache=True, logits_to_keep=1, **{self.cache_kw: self._cache})
        self._cache = returned_cache(out)
        self.cached_ids.extend(ids)
        return out.logits[0, -1].float()
