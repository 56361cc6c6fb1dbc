"""The q4-gguf decode token in one compiled call (`csrc/decoder.cpp`), wired to FastLlama's weights, KV
caches and active adapters.

Why: with the 4-bit GEMVs compiled, the rest of a Python decode token (~1,500 small torch ops: norms,
rotary, two LoRA matmuls per projection, attention) cost as much again. The decoder runs the same
arithmetic in one call and reads the same tensors: FastLlama's groups, norm weights, KV buffers and
concatenated LoRA pairs, so a prefill in Python and the decode steps after it share one cache, and a
profile switch only hands over the new (A, B) pairs.
"""

from __future__ import annotations

import torch

from medchat.core.engine.gguf_blocks import Q4Rows, Q8Rows

KEYS = ("qkv", "o", "gate_up", "down")  # the decoder's projection slots, in this order
ROPE_ROWS = 256  # rotary rows computed at a time (doubled as the context grows)


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().float().contiguous()


class Q4Step:
    def __init__(self, decoder, rotary):
        self.decoder, self.rotary = decoder, rotary
        self._cos = self._sin = None

    @classmethod
    def build(cls, kernel, llama) -> "Q4Step | None":
        """A decoder over `llama`'s (a FastLlama in q4-gguf mode) weights, or None where a piece is not
        the kind it computes (then the Python path decodes)."""
        norms = [llama.norm] + [n for ln1, ln2, _ in llama.layers for n in (ln1, ln2)]
        eps = {getattr(n, "variance_epsilon", None) for n in norms}
        if len(eps) != 1 or None in eps or not hasattr(kernel, "Q4Decoder"):
            return None
        dec = kernel.Q4Decoder(len(llama.layers), llama.n_heads, llama.n_kv, llama.head_dim, float(eps.pop()),
                               _f32(llama.embed.weight), _f32(llama.norm.weight))
        for i, (ln1, ln2, fused) in enumerate(llama.layers):
            dec.set_layer(i, _f32(ln1.weight), _f32(ln2.weight))
            for slot, key in enumerate(KEYS):
                base = fused[key].base
                rows = getattr(base, "rows", None)
                if not isinstance(rows, Q4Rows):
                    return None
                dec.set_proj(i, slot, rows.q, rows.d, rows.m, None if base.bias is None else _f32(base.bias))
        head = llama.lm_head
        if isinstance(getattr(head, "rows", None), Q8Rows):
            dec.set_head_q8(head.rows.q, head.rows.d)
        elif isinstance(getattr(head, "weight", None), torch.Tensor):
            dec.set_head_float(_f32(head.weight))
        else:
            return None
        return cls(dec, llama.rotary)

    def set_lora(self, layers) -> None:
        """Hand over each projection's active (A, B) pair (FusedLinear.set_lora built them)."""
        for i, (_, _, fused) in enumerate(layers):
            for slot, key in enumerate(KEYS):
                self.decoder.set_lora(i, slot, fused[key].lora_a, fused[key].lora_b)

    def set_caches(self, kvs) -> None:
        for i, kv in enumerate(kvs):
            self.decoder.set_cache(i, kv.k, kv.v)

    def __call__(self, token: int, pos: int) -> torch.Tensor:
        """Logits (vocab,) for `token` at `pos`; the caches must already hold room for it."""
        cos, sin = self._rope(pos)
        return self.decoder.step(token, pos, cos, sin)

    def _rope(self, pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotary module's row for pos, from a table (the module computes each row independently)."""
        if self._cos is None or pos >= self._cos.shape[0]:
            n = max(ROPE_ROWS, 2 * (pos + 1))
            cos, sin = self.rotary(torch.empty(1, dtype=torch.float32), torch.arange(n).unsqueeze(0))
            self._cos, self._sin = cos[0].float().contiguous(), sin[0].float().contiguous()
        return self._cos[pos], self._sin[pos]
