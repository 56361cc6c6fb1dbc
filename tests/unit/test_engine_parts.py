"""The fast path's pieces on their own: fused LoRA math, int8 linears, the KV buffer, adapter reading."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from medchat.core.engine.engine import GenerationStats
from medchat.core.engine.fast_llama import FusedLinear, Int8Linear, _KV
from medchat.core.engine.lora_weights import LoraModule, UnsupportedAdapter, load_lora
from medchat.core.errors import UserError

IN = 16
SIZES = {"q_proj": 16, "k_proj": 8, "v_proj": 8}


def gen(seed):
    return torch.Generator().manual_seed(seed)


def linears(seed=0):
    g = gen(seed)
    out = []
    for name, size in SIZES.items():
        lin = nn.Linear(IN, size, bias=False)
        lin.weight.data = torch.randn(size, IN, generator=g)
        out.append(lin)
    return out


def lora(out_f, r, seed, scale=0.5):
    g = gen(seed)
    return LoraModule(torch.randn(r, IN, generator=g), torch.randn(out_f, r, generator=g), scale)


# --- GenerationStats ---------------------------------------------------------------------------
def test_stats_rate_counts_decode_tokens_after_the_first():
    s = GenerationStats(prompt_tokens=10, completion_tokens=11, ttft_s=0.5, total_s=1.5)
    assert s.tokens_per_s == pytest.approx(10.0)
    assert GenerationStats(completion_tokens=1, ttft_s=0.2, total_s=0.2).tokens_per_s == 0.0
    d = s.to_dict()
    assert "text" not in d and d["tokens_per_s"] == 10.0 and d["prompt_tokens"] == 10


# --- FusedLinear + LoRA ----------------------------------------------------------------------------
def reference(lins, adapters, x):
    """Per projection: W x + sum over adapters of scale * B A x, concatenated like the fused output."""
    outs = []
    for lin, name in zip(lins, SIZES):
        y = lin(x)
        for mods in adapters:
            m = mods.get(name)
            if m is not None:
                y = y + m.scale * (x @ m.A.t()) @ m.B.t()
        outs.append(y)
    return torch.cat(outs, -1)


def test_fused_projection_equals_separate_linears():
    lins = linears()
    fused = FusedLinear(lins, tuple(SIZES), quantize=False)
    x = torch.randn(1, 3, IN, generator=gen(9))
    torch.testing.assert_close(fused(x), reference(lins, [], x))


def test_stacked_adapters_add_their_deltas_per_projection():
    lins = linears()
    fused = FusedLinear(lins, tuple(SIZES), quantize=False)
    a = {"q_proj": lora(16, 2, 1), "v_proj": lora(8, 2, 2)}  # leaves k_proj alone
    b = {"k_proj": lora(8, 3, 3, scale=2.0), "q_proj": lora(16, 3, 4, scale=0.25)}
    x = torch.randn(1, 4, IN, generator=gen(5))
    fused.set_lora([a, b], torch.float32, "cpu")
    torch.testing.assert_close(fused(x), reference(lins, [a, b], x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(fused(x), reference(lins, [a], x), atol=1e-3)
    fused.set_lora([a], torch.float32, "cpu")
    torch.testing.assert_close(fused(x), reference(lins, [a], x), rtol=1e-5, atol=1e-5)
    fused.set_lora([], torch.float32, "cpu")
    assert fused.lora_a is None
    assert torch.equal(fused(x), FusedLinear(lins, tuple(SIZES), quantize=False)(x))


def test_adapter_of_the_wrong_shape_is_refused():
    fused = FusedLinear(linears(), tuple(SIZES), quantize=False)
    bad = {"q_proj": LoraModule(torch.randn(2, IN + 1), torch.randn(16, 2), 1.0)}
    with pytest.raises(ValueError, match="does not fit"):
        fused.set_lora([bad], torch.float32, "cpu")


# --- int8 ------------------------------------------------------------------------------------------
def test_int8_linear_is_close_to_float_and_batch_independent():
    g = gen(11)
    w, bias = torch.randn(48, 32, generator=g), torch.randn(48, generator=g)
    q = Int8Linear(w, bias)
    assert q.qweight.dtype == torch.int8
    x = torch.randn(1, 7, 32, generator=g)
    ref = x @ w.t() + bias
    y = q(x)
    assert ((y - ref).norm() / ref.norm()).item() < 0.02
    rows = torch.cat([q(x[:, i:i + 1]) for i in range(7)], 1)  # weight-only: a prefill = one at a time
    torch.testing.assert_close(rows, y, rtol=1e-5, atol=1e-5)


def test_quantized_fused_linear_keeps_float_lora():
    lins = linears()
    fused = FusedLinear(lins, tuple(SIZES), quantize=True)
    plain = FusedLinear(lins, tuple(SIZES), quantize=True)
    a = {"q_proj": lora(16, 2, 1)}
    fused.set_lora([a], torch.float32, "cpu")
    x = torch.randn(1, 2, IN, generator=gen(2))
    delta = fused(x) - plain(x)
    torch.testing.assert_close(delta[..., :16], a["q_proj"].scale * (x @ a["q_proj"].A.t()) @ a["q_proj"].B.t(),
                               rtol=1e-4, atol=1e-4)
    assert torch.count_nonzero(delta[..., 16:]) == 0


# --- KV buffer ---------------------------------------------------------------------------------------
def test_kv_buffer_grows_and_keeps_earlier_entries():
    kv = _KV(2, 4, torch.float32, "cpu")
    first = torch.randn(1, 2, 200, 4, generator=gen(1))
    kv.write(0, first, first * 2)
    more = torch.randn(1, 2, 150, 4, generator=gen(2))
    k, v = kv.write(200, more, -more)
    assert k.shape[2] == 350 and kv.k.shape[2] >= 350
    assert torch.equal(k[:, :, :200], first) and torch.equal(v[:, :, 200:], -more)
    k, _ = kv.write(10, more[:, :, :1], more[:, :, :1])  # after a truncate: overwrite, view ends there
    assert k.shape[2] == 11 and torch.equal(k[:, :, 10], more[:, :, 0])


# --- reading adapters ---------------------------------------------------------------------------------
def write_adapter(path: Path, cfg: dict, keys=("q_proj", "v_proj"), r=4, drop_b=False, extra=None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": r, "lora_alpha": 8, **cfg}))
    t = {}
    for layer in (0, 1):
        for proj in keys:
            parent = "mlp" if proj.endswith(("gate_proj", "up_proj", "down_proj")) else "self_attn"
            pre = f"base_model.model.model.layers.{layer}.{parent}.{proj}"
            t[f"{pre}.lora_A.weight"] = torch.randn(r, IN)
            if not drop_b:
                t[f"{pre}.lora_B.weight"] = torch.randn(SIZES.get(proj, 16), r)
    t.update(extra or {})
    save_file(t, str(path / "adapter_model.safetensors"))
    return path


def test_load_lora_maps_layers_and_scales(tmp_path):
    mods = load_lora(write_adapter(tmp_path / "a", {}, r=4))
    assert set(mods) == {(0, "q_proj"), (0, "v_proj"), (1, "q_proj"), (1, "v_proj")}
    assert mods[(0, "q_proj")].scale == pytest.approx(8 / 4)
    assert mods[(1, "v_proj")].A.shape == (4, IN) and mods[(1, "v_proj")].B.shape == (8, 4)


def test_load_lora_rslora_and_alpha_pattern(tmp_path):
    rs = load_lora(write_adapter(tmp_path / "rs", {"use_rslora": True}, r=4))
    assert rs[(0, "q_proj")].scale == pytest.approx(8 / math.sqrt(4))
    pat = load_lora(write_adapter(tmp_path / "pat", {"alpha_pattern": {"v_proj": 32}}, r=4))
    assert pat[(0, "v_proj")].scale == pytest.approx(32 / 4) and pat[(0, "q_proj")].scale == pytest.approx(2)


@pytest.mark.parametrize("cfg, extra", [
    ({"use_dora": True}, None),
    ({"modules_to_save": ["lm_head"]}, None),
    ({"bias": "lora_only"}, None),
    ({}, {"base_model.model.model.embed_tokens.lora_embedding_A": torch.randn(4, 10)}),
])
def test_features_the_fast_path_lacks_are_reported(tmp_path, cfg, extra):
    with pytest.raises(UnsupportedAdapter):
        load_lora(write_adapter(tmp_path / "x", cfg, extra=extra))


def test_corrupt_or_missing_weights_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="lacks lora_A or lora_B"):
        load_lora(write_adapter(tmp_path / "half", {}, drop_b=True))
    d = write_adapter(tmp_path / "gone", {})
    (d / "adapter_model.safetensors").unlink()
    with pytest.raises(UserError, match="no adapter_model.safetensors"):
        load_lora(d)


def test_pickled_weights_load_only_when_allowed(tmp_path):
    d = write_adapter(tmp_path / "pk", {})
    from safetensors.torch import load_file

    torch.save(load_file(str(d / "adapter_model.safetensors")), d / "adapter_model.bin")
    (d / "adapter_model.safetensors").unlink()
    with pytest.raises(UserError):
        load_lora(d)
    assert len(load_lora(d, allow_pickle=True)) == 4
