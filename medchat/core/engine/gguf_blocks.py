"""The GGUF's own quantised groups, repacked for `qgemv`: the weights the float model was dequantised from.

Q4_1 (20 bytes per 32 weights: fp16 d, fp16 m, 16 bytes of nibbles) becomes nibbles (rows, groups*16)
+ float32 d and m (rows, groups); Q8_0 (34 bytes: fp16 d, 32 int8) becomes int8 (rows, k) + float32 d.
Rows are put in the Hugging Face order: llama.cpp's converter interleaves the rotary halves of the q and
k rows, and transformers' GGUF loader undoes that (`_qk_rows` is the same reordering).

`read` checks what it returns against the float model: every projection's shape, and one layer's
value rows dequantised bit for bit. Anything else (another quant type, another layout) gives None, and
the engine decodes in float. Parsing a GGUF takes ~4 s (its metadata is read field by field), so `load`
keeps the repacked arrays beside the converted model (safetensors) and reads them on later starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

GGUF_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
              "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


@dataclass
class Q4Rows:
    q: torch.Tensor  # (rows, groups * 16) uint8
    d: torch.Tensor  # (rows, groups) float32
    m: torch.Tensor  # (rows, groups) float32

    def dequantize(self) -> torch.Tensor:
        lo, hi = (self.q & 15).float(), (self.q >> 4).float()
        n, g = self.d.shape
        vals = torch.cat([lo.view(n, g, 16), hi.view(n, g, 16)], -1)
        return (vals * self.d[..., None] + self.m[..., None]).view(n, g * 32)

    @staticmethod
    def cat(parts: list["Q4Rows"]) -> "Q4Rows":
        """Rows stacked (a fused projection); one part is returned as it is (no copy)."""
        if len(parts) == 1:
            return parts[0]
        return Q4Rows(*(torch.cat([getattr(p, f) for p in parts]).contiguous() for f in ("q", "d", "m")))


@dataclass
class Q8Rows:
    q: torch.Tensor  # (rows, k) int8
    d: torch.Tensor  # (rows, k / 32) float32

    def dequantize(self) -> torch.Tensor:
        n, g = self.d.shape
        return (self.q.float().view(n, g, 32) * self.d[..., None]).view(n, g * 32)


def _fp16(b: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(b).view(np.float16).astype(np.float32)[..., 0])


def _q4_1(raw: np.ndarray, rows: np.ndarray | None) -> Q4Rows:
    b = raw.reshape(raw.shape[0], -1, 20)
    if rows is not None:
        b = b[rows]
    n, g = b.shape[:2]
    return Q4Rows(torch.from_numpy(np.ascontiguousarray(b[..., 4:]).reshape(n, g * 16)), _fp16(b[..., 0:2]),
                  _fp16(b[..., 2:4]))


def _q8_0(raw: np.ndarray) -> Q8Rows:
    b = raw.reshape(raw.shape[0], -1, 34)
    n, g = b.shape[:2]
    return Q8Rows(torch.from_numpy(np.ascontiguousarray(b[..., 2:]).view(np.int8).reshape(n, g * 32)),
                  _fp16(b[..., 0:2]))


def _qk_rows(n_rows: int, n_heads: int) -> np.ndarray:
    """For each Hugging Face row of q or k, the GGUF row it is stored in."""
    half = n_rows // n_heads // 2
    h, t, j = np.meshgrid(np.arange(n_heads), np.arange(2), np.arange(half), indexing="ij")
    return (h * 2 * half + j * 2 + t).reshape(-1)


def load(path: Path, parts, cache: Path) -> dict | None:
    """`read`, through the cache file `cache` (rebuilt when the GGUF's size or mtime changes)."""
    from safetensors import safe_open
    from safetensors.torch import save

    from medchat.core.paths import atomic_write

    stat = path.stat()
    stamp = {"gguf": path.name, "size": str(stat.st_size), "mtime_ns": str(stat.st_mtime_ns)}
    if cache.exists():
        try:
            with safe_open(str(cache), "pt") as fh:
                flat = {k: fh.get_tensor(k) for k in fh.keys()} if fh.metadata() == stamp else None
            if flat is not None:
                blocks = _unflatten(flat, len(parts.layers))
                return blocks if _matches(blocks, parts) else None
        except (OSError, ValueError, KeyError):
            pass  # unreadable or from another layout: rebuilt below
    blocks = read(path, parts)
    if blocks is not None:
        atomic_write(cache, lambda fh: fh.write(save(_flatten(blocks), metadata=stamp)), mode=0o644)
    return blocks


def _flatten(blocks: dict) -> dict[str, torch.Tensor]:
    flat = {f"{i}.{proj}.{f}": getattr(rows, f) for i, layer in enumerate(blocks["layers"])
            for proj, rows in layer.items() for f in ("q", "d", "m")}
    if blocks["head"] is not None:
        flat.update({"head.q": blocks["head"].q, "head.d": blocks["head"].d})
    return flat


def _unflatten(flat: dict[str, torch.Tensor], n_layers: int) -> dict:
    layers = [{proj: Q4Rows(flat[f"{i}.{proj}.q"], flat[f"{i}.{proj}.d"], flat[f"{i}.{proj}.m"])
               for proj in GGUF_NAMES} for i in range(n_layers)]
    head = Q8Rows(flat["head.q"], flat["head.d"]) if "head.q" in flat else None
    return {"layers": layers, "head": head}


def read(path: Path, parts) -> dict | None:
    """{"layers": [{proj: Q4Rows}], "head": Q8Rows | None} for a LlamaParts converted from `path`, or None
    when the file is not laid out as expected."""
    import gguf

    tensors = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    cfg = parts.config
    heads = {"q_proj": cfg.num_attention_heads, "k_proj": getattr(cfg, "num_key_value_heads", None) or
             cfg.num_attention_heads}
    layers = []
    for i, layer in enumerate(parts.layers):
        out = {}
        for proj, name in GGUF_NAMES.items():
            t = tensors.get(f"blk.{i}.{name}.weight")
            if t is None or t.tensor_type.name != "Q4_1":
                return None
            raw = np.asarray(t.data)
            rows = _qk_rows(raw.shape[0], heads[proj]) if proj in heads else None
            out[proj] = _q4_1(raw, rows)
            if tuple(out[proj].d.shape) != (layer[proj].weight.shape[0], layer[proj].weight.shape[1] // 32):
                return None
        layers.append(out)
    head_t = tensors.get("output.weight") or tensors.get("token_embd.weight")
    head = _q8_0(np.asarray(head_t.data)) if head_t is not None and head_t.tensor_type.name == "Q8_0" else None
    if head is not None and head.q.shape != parts.head.weight.shape:
        head = None
    blocks = {"layers": layers, "head": head}
    return blocks if _matches(blocks, parts) else None


def _matches(blocks: dict, parts) -> bool:
    """The groups are the float model's source: one layer's value rows (and the head's first rows)
    dequantise to its weights bit for bit. Cheap (~1 ms), so cached groups are checked on every load."""
    if not torch.equal(blocks["layers"][0]["v_proj"].dequantize(), parts.layers[0]["v_proj"].weight.float()):
        return False
    head = blocks["head"]
    return head is None or torch.equal(
        Q8Rows(head.q[:64], head.d[:64]).dequantize(), parts.head.weight[:64].float())


def for_decode(parts, gguf: Path | None) -> tuple[dict | None, str]:
    """The GGUF's groups and the compiled kernel for q4-gguf, or (None, why float is used instead)."""
    from medchat.core.engine import qgemv

    if gguf is None:
        return None, "the base was not converted from a GGUF"
    if str(parts.device) != "cpu":
        return None, "the 4-bit kernel runs on the CPU"
    from medchat.core import paths

    blocks = load(gguf, parts, paths.models_dir() / f"{gguf.stem}.groups.safetensors")
    if blocks is None:
        return None, f"{gguf.name} does not hold Q4_1 groups matching the converted weights"
    kernel = qgemv.load()
    if kernel is None:
        return None, f"the 4-bit kernel could not be built ({qgemv.unavailable()})"
    return {**blocks, "kernel": kernel}, ""
