"""The fast decode path for Llama-family models: fused projections + hot-swappable LoRA.

Why hand-written: most of a CPU decode step is GEMV over the weights, so weight bytes are the lever.
The default keeps the embedded base as the GGUF's own 4-bit groups, multiplied exactly (`qgemv`);
int8 modes are opt-in (see DECODE_MODES). q/k/v and gate/up are fused so each layer runs 4 GEMVs
instead of 7, and LoRA stays in float beside the base: the active adapter chain is
concatenated into one (A, B) pair per fused projection, so a stacked chain costs two small matmuls
and switching profiles only re-concatenates small tensors (the base is never touched).
Norms and rotary embeddings are the model's own modules, so numerics match transformers.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from medchat.core.engine import gguf_blocks
from medchat.core.engine.gguf_blocks import Q4Rows, Q8Rows
from medchat.core.engine.llama_parts import Linear, LlamaParts, supported_config
from medchat.core.engine.lora_weights import LoraModule, load_lora
from medchat.core.engine.q4_step import Q4Step
from medchat.core.quiet import library_warnings

_FUSED = {"qkv": ("q_proj", "k_proj", "v_proj"), "o": ("o_proj",), "gate_up": ("gate_proj", "up_proj"),
          "down": ("down_proj",)}


def supports(model) -> bool:
    return supported_config(model.config) and not getattr(model, "is_quantized", False)


class Int8Linear(nn.Module):
    """Weight-only int8 (per-output-channel scales) via aten._weight_int8pack_mm.

    The kernel takes int8 weights [N, K], scales [N] in the activation dtype, and returns that dtype.
    With bfloat16 activations it runs the AVX-512/AMX path (~12x faster than float32 here); the
    result is cast back to float32 so the residual stream, norms and attention stay float32.
    Activations are never quantized, so a prefill gives the same numbers as one token at a time.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, act_dtype=torch.float32):
        super().__init__()
        w = weight.float()
        scales = (w.abs().amax(1) / 127.0).clamp(min=1e-8)
        self.register_buffer("qweight", torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous())
        self.register_buffer("scales", scales.to(act_dtype).contiguous())
        self.act_dtype = act_dtype
        self.bias = None if bias is None else bias.float()
        self.out_features = w.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1]).to(self.act_dtype)
        if x2.shape[0] == 1:  # decode: the GEMV kernel
            y = torch.ops.aten._weight_int8pack_mm(x2, self.qweight, self.scales).float()
        else:  # prefill: the kernel is GEMV-tuned (8x slower than a GEMM at 300 rows); |q| <= 127 is exact in bf16
            y = F.linear(x2, self.qweight.to(self.act_dtype)).float() * self.scales.float()
        y = y.view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


class BlockLinear(nn.Module):
    """One decode row through `qgemv` on the GGUF's groups (the float weight's exact source); several rows
    (a prefill) through the float weight, where a GEMM is faster than repeated GEMVs."""

    def __init__(self, kernel, rows: Q4Rows | Q8Rows, fallback: nn.Module):
        super().__init__()
        self.kernel, self.rows, self.fallback = kernel, rows, fallback
        self.out_features, self.in_features = rows.d.shape[0], rows.d.shape[1] * 32
        self.bias = getattr(fallback, "bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() != self.in_features or x.dtype != torch.float32:
            return self.fallback(x)
        flat = x.reshape(-1).contiguous()
        r = self.rows
        y = (self.kernel.q4_1_gemv(flat, r.q, r.d, r.m) if isinstance(r, Q4Rows)
             else self.kernel.q8_0_gemv(flat, r.q, r.d)).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


# How the CPU fast path stores and multiplies the base weights. Measured on SmolLM2-135M + LoRA,
# 2 threads, against the float fast path (benchmarks/README.md has the table and load average).
DECODE_MODES = {
    "q4-gguf": "the embedded GGUF's own Q4_1 groups (Q8_0 head) through a compiled GEMV, float32 activations: "
               "the float model's weights exactly, summed in another order (float where there is no GGUF)",
    "int8w-bf16": "weight-only int8, bfloat16 activations per projection (LoRA, norms, attention float32)",
    "dynamic-int8": "fbgemm dynamic int8 with SmoothQuant, down_proj kept float",
    "int8w-fp32": "weight-only int8, float32 activations (accurate, slow kernel), down_proj kept float",
    "float": "no quantization",
}
# The default must be faithful: greedy output as the float model's (what eval and training measure).
# q4-gguf is (agreement 1.0, benchmarks/README.md); no int8 mode reaches 0.9, so they stay opt-in.
DEFAULT_CPU_MODE = "q4-gguf"
LOSSY_CPU_MODE = "dynamic-int8"  # the fastest mode; what the older `quantize=True` switch asks for
# Projections left in float per mode: dynamic int8 crushes down_proj's outlier inputs.
_FLOAT_KEYS = {"dynamic-int8": {"down"}, "int8w-fp32": {"down"}, "int8w-bf16": set(), "float": set(),
               "q4-gguf": set()}
_ALIASES = {"dynamic": "dynamic-int8", "weight": "int8w-fp32", "off": "float", "none": "float"}


def canonical_mode(name: str) -> str:
    """A mode name (or an old MEDCHAT_QUANT spelling) -> its DECODE_MODES key; ValueError if unknown."""
    mode = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if mode not in DECODE_MODES:
        raise ValueError(f"unknown decode mode '{name}' (choose from {', '.join(DECODE_MODES)})")
    return mode


def _quantize(weight: torch.Tensor, bias: torch.Tensor | None, mode: str) -> nn.Module:
    if mode in ("int8w-fp32", "int8w-bf16"):
        return Int8Linear(weight, bias, torch.bfloat16 if mode == "int8w-bf16" else torch.float32)
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    lin.weight.data = weight.float().contiguous()
    if bias is not None:
        lin.bias.data = bias.float()
    with library_warnings():  # torch deprecates the quantized tensor API this path relies on
        q = torch.ao.quantization.quantize_dynamic(
            nn.Sequential(lin), {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, dtype=torch.qint8)
    return q[0]


class FusedLinear(nn.Module):
    """Several projections sharing an input, computed as one GEMV, plus an optional LoRA delta."""

    def __init__(self, linears: list[nn.Linear], names: tuple[str, ...], quantize: str | None,
                 blocks: tuple | None = None):
        """blocks: (qgemv module, Q4Rows of the joined projections) for the q4-gguf mode."""
        super().__init__()
        self.names = names
        self.sizes = [lin.out_features for lin in linears]
        self.in_features = linears[0].in_features
        # one projection is used as it is (no copy of a weight that may be memory-mapped from disk)
        join = (lambda ts: ts[0]) if len(linears) == 1 else (lambda ts: torch.cat(ts, 0))
        weight = join([lin.weight.detach() for lin in linears])
        biases = [lin.bias for lin in linears]
        bias = join([b.detach() for b in biases]) if biases[0] is not None else None
        if quantize:
            self.base = _quantize(weight, bias, quantize)
        else:
            self.base = Linear(weight, bias)  # nn.Linear would first fill a random weight (0.5 s a start)
        if blocks is not None:
            self.base = BlockLinear(blocks[0], blocks[1], self.base)
        self.inv_smooth: torch.Tensor | None = None  # SmoothQuant: x / s before the int8 GEMV
        self.lora_a: torch.Tensor | None = None  # (R, in)
        self.lora_b: torch.Tensor | None = None  # (out, R), scale folded in

    def quantize_(self, act_max: torch.Tensor | None, alpha: float = 0.5) -> None:  # dynamic-int8 only
        """Quantize a float base in place. With activation maxima from a calibration pass, move
        part of each input channel's range into the weights (SmoothQuant), so dynamically quantized
        activations keep their precision despite the outlier channels small LMs have."""
        w = self.base.weight.data.float()
        bias = self.base.bias.data if self.base.bias is not None else None
        if act_max is not None:
            s = (act_max.clamp(min=1e-5) ** alpha / w.abs().amax(0).clamp(min=1e-5) ** (1 - alpha)).clamp(1e-3, 1e3)
            w = w * s
            self.inv_smooth = (1.0 / s).contiguous()
        self.base = _quantize(w, bias, "dynamic-int8")

    def set_lora(self, modules: list[dict[str, LoraModule]], dtype, device) -> None:
        """Activate the given adapters (each a {proj name: LoraModule}); [] disables LoRA."""
        a_parts, b_blocks = [], []
        for mods in modules:
            for i, name in enumerate(self.names):
                m = mods.get(name)
                if m is None:
                    continue
                if m.A.shape[1] != self.in_features or m.B.shape[0] != self.sizes[i]:
                    raise ValueError(f"{name}: adapter shape {tuple(m.B.shape)}x{tuple(m.A.shape)} does not fit")
                row0 = sum(self.sizes[:i])
                a_parts.append(m.A)
                b_blocks.append((row0, m.B * m.scale))
        if not a_parts:
            self.lora_a = self.lora_b = None
            return
        total_r = sum(a.shape[0] for a in a_parts)
        b = torch.zeros(sum(self.sizes), total_r)
        col = 0
        for (row0, blk), a in zip(b_blocks, a_parts):
            b[row0:row0 + blk.shape[0], col:col + a.shape[0]] = blk
            col += a.shape[0]
        self.lora_a = torch.cat(a_parts, 0).to(device=device, dtype=dtype).contiguous()
        self.lora_b = b.to(device=device, dtype=dtype).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x if self.inv_smooth is None else x * self.inv_smooth)
        if self.lora_a is not None:
            y = y + (x @ self.lora_a.t()) @ self.lora_b.t()
        return y


class _KV:
    """A growable per-layer KV buffer (doubling) so long chats don't preallocate the full context."""

    def __init__(self, n_kv: int, head_dim: int, dtype, device):
        self.k = torch.empty(1, n_kv, 256, head_dim, dtype=dtype, device=device)
        self.v = torch.empty_like(self.k)

    def reserve(self, end: int) -> bool:
        """Room for positions < end; True when the buffers were replaced by larger ones."""
        if end <= self.k.shape[2]:
            return False
        size = max(end, 2 * self.k.shape[2])
        grow = lambda t: torch.cat([t, t.new_empty(1, t.shape[1], size - t.shape[2], t.shape[3])], 2)
        self.k, self.v = grow(self.k), grow(self.v)
        return True

    def write(self, pos: int, k: torch.Tensor, v: torch.Tensor):
        end = pos + k.shape[2]
        self.reserve(end)
        self.k[:, :, pos:end] = k
        self.v[:, :, pos:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class FastLlama:
    """Backend protocol: cached_ids, truncate(n), forward(ids) -> last logits, set_chain(chain)."""

    kind = "fast"

    def __init__(self, parts: LlamaParts, mode: str = "float", calibration_ids: list[int] | None = None,
                 gguf: Path | None = None):
        """parts: llama_parts.from_hf(model) or from_dir(...); mode: a DECODE_MODES key;
        calibration_ids feed dynamic-int8's SmoothQuant pass; gguf: the file `parts` were converted
        from (q4-gguf reads its groups; without it, or without a compiler, q4-gguf decodes in float
        and `fallback_reason` says why)."""
        cfg = parts.config
        self.device = parts.device
        self.dtype = parts.dtype
        mode = canonical_mode(mode)
        if mode != "float" and self.dtype != torch.float32:
            raise ValueError(f"the {mode} fast path expects a float32 model")
        self.fallback_reason = ""
        blocks = None
        if mode == "q4-gguf":
            blocks, self.fallback_reason = gguf_blocks.for_decode(parts, gguf)
            mode = mode if blocks is not None else "float"
        self.mode = mode
        self.quantized = mode not in ("float", "q4-gguf")  # lossy int8
        float_keys = _FLOAT_KEYS[mode]
        dynamic = mode == "dynamic-int8"
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.embed = parts.embed
        self.rotary = parts.rotary
        self.norm = parts.norm
        self.layers = []
        for i, layer in enumerate(parts.layers):
            fused = {key: FusedLinear([layer[n] for n in names], names,
                                      mode if self.quantized and not dynamic and key not in float_keys else None,
                                      (blocks["kernel"], Q4Rows.cat([blocks["layers"][i][n] for n in names]))
                                      if blocks else None)
                     for key, names in _FUSED.items()}
            self.layers.append((layer["input_layernorm"], layer["post_attention_layernorm"], fused))
        head = parts.head
        if dynamic:  # smoothed and quantized with the projections below
            self.lm_head = FusedLinear([head], ("lm_head",), quantize=None)
        else:
            self.lm_head = _quantize(head.weight.detach(), None, mode) if self.quantized else head
        if blocks and blocks["head"] is not None:
            self.lm_head = BlockLinear(blocks["kernel"], blocks["head"], head)
        self.max_positions = getattr(cfg, "max_position_embeddings", 4096)
        self._adapters: dict[str, dict[int, dict[str, LoraModule]]] = {}
        self.active: list[str] = []
        # q4-gguf decodes a token in one compiled call; prefills (and every other mode) run below in Python
        self._step = Q4Step.build(blocks["kernel"], self) if blocks else None
        self.reset()
        if dynamic:
            self._calibrate_and_quantize(calibration_ids or list(range(1, 65)), float_keys)

    def _calibrate_and_quantize(self, ids: list[int], float_keys: set[str]) -> None:
        """One float prefill records each projection's per-channel input max, then quantize."""
        maxima: dict[int, torch.Tensor] = {}
        hooks = []
        targets = [fl for _, _, fused in self.layers for key, fl in fused.items() if key not in float_keys]
        targets.append(self.lm_head)
        for fl in targets:
            def hook(mod, args, _id=id(fl)):
                m = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0)
                maxima[_id] = m if _id not in maxima else torch.maximum(maxima[_id], m)
            hooks.append(fl.register_forward_pre_hook(hook))
        try:
            self.forward(ids)
        finally:
            for h in hooks:
                h.remove()
            self.reset()
        for fl in targets:
            fl.quantize_(maxima.get(id(fl)))

    # --- adapters --------------------------------------------------------------------------
    def load_adapter(self, name: str, adapter_dir: Path, allow_pickle: bool = False) -> None:
        if name in self._adapters:
            return
        per_layer: dict[int, dict[str, LoraModule]] = {}
        for (layer, proj), mod in load_lora(adapter_dir, allow_pickle).items():
            if layer >= len(self.layers):
                raise ValueError(f"layer {layer} does not exist in this base")
            per_layer.setdefault(layer, {})[proj] = mod
        self._adapters[name] = per_layer
        try:  # check every shape now, so a mismatched adapter fails at load, not mid-chat
            self._apply([name])
        except ValueError:
            del self._adapters[name]
            self._apply(self.active)
            raise
        self._apply(self.active)

    def unload_adapter(self, name: str) -> None:
        self._adapters.pop(name, None)

    def set_chain(self, chain: list[tuple[str, Path]], allow_pickle: bool = False) -> None:
        for name, path in chain:
            self.load_adapter(name, path, allow_pickle)
        names = [n for n, _ in chain]
        if names != self.active:
            self._apply(names)
            self.active = names
            self.reset()

    def _apply(self, names: list[str]) -> None:
        for i, (_, _, fused) in enumerate(self.layers):
            mods = [self._adapters[n].get(i, {}) for n in names]
            for fl in fused.values():
                fl.set_lora(mods, self.dtype, self.device)
        if self._step is not None:
            self._step.set_lora(self.layers)

    # --- cache -----------------------------------------------------------------------------
    def reset(self) -> None:
        self.cached_ids: list[int] = []
        self._kv = [_KV(self.n_kv, self.head_dim, self.dtype, self.device) for _ in self.layers]
        if self._step is not None:
            self._step.set_caches(self._kv)

    def truncate(self, n: int) -> None:
        del self.cached_ids[n:]  # K/V beyond n are simply overwritten by the next write

    # --- compute ---------------------------------------------------------------------------
    @torch.inference_mode()
    def forward(self, ids: list[int]) -> torch.Tensor:
        past, n = len(self.cached_ids), len(ids)
        if n == 1 and self._step is not None:
            if any([kv.reserve(past + 1) for kv in self._kv]):  # a list: every layer grows, not just the first
                self._step.set_caches(self._kv)
            logits = self._step(ids[0], past)
            self.cached_ids.append(ids[0])
            return logits
        x = self.embed(torch.tensor([ids], device=self.device))
        pos = torch.arange(past, past + n, device=self.device).unsqueeze(0)
        cos, sin = self.rotary(x, pos)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        mask = None
        if n > 1:
            mask = torch.ones(n, past + n, dtype=torch.bool, device=self.device).tril(diagonal=past)
        h, d = self.n_heads, self.head_dim
        q_size, kv_size = h * d, self.n_kv * d
        for (ln1, ln2, fused), kv in zip(self.layers, self._kv):
            qkv = fused["qkv"](ln1(x))
            q = qkv[..., :q_size].view(1, n, h, d).transpose(1, 2)
            k = qkv[..., q_size:q_size + kv_size].view(1, n, self.n_kv, d).transpose(1, 2)
            v = qkv[..., q_size + kv_size:].view(1, n, self.n_kv, d).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            k_all, v_all = kv.write(past, k, v)
            att = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask,
                                                 enable_gqa=self.n_kv != h)
            x = x + fused["o"](att.transpose(1, 2).reshape(1, n, q_size))
            gu = fused["gate_up"](ln2(x))
            gate, up = gu.chunk(2, dim=-1)
            x = x + fused["down"](F.silu(gate) * up)
        self.cached_ids.extend(ids)
        if self._step is not None:  # the writes above may have grown the caches into new tensors
            self._step.set_caches(self._kv)
        last = self.norm(x[:, -1:])
        return self.lm_head(last)[0, -1].float()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)
