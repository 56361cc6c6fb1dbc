"""Decode modes of the fast path: the bf16-activation int8 mode against float, LoRA under it, and
how a mode is chosen (constructor argument, --decode-mode, MEDCHAT_DECODE_MODE)."""

from __future__ import annotations

import pytest
import torch

from medchat.core.engine import fast_llama
from medchat.core.errors import UserError
from medchat.core.profiles import ProfileStore
from test_engine_support import INT8_BOUNDS, MSGS, install, make_engine, one_torch_thread  # noqa: F401


def test_int8pack_kernel_layout_matches_a_float_matmul():
    """int8 weight [N, K] and scales [N] in the activation dtype; bf16 in, bf16 out (cast to float)."""
    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(48, 32, generator=g), torch.randn(3, 32, generator=g)
    lin = fast_llama.Int8Linear(w, None, torch.bfloat16)
    assert lin.qweight.dtype == torch.int8 and lin.qweight.shape == (48, 32)
    assert lin.scales.dtype == torch.bfloat16 and lin.scales.shape == (48,)
    y = lin(x)
    assert y.dtype == torch.float32
    dequant = lin.qweight.float() * lin.scales.float()[:, None]
    torch.testing.assert_close(y, x.bfloat16().float() @ dequant.t(), rtol=2e-2, atol=2e-2)
    assert ((y - x @ w.t()).norm() / (x @ w.t()).norm()).item() < 0.02


def _first_logits(engine):
    engine.backend.reset()
    return engine.backend.forward(engine.prompt_ids(MSGS, 8))


def test_bf16_mode_logits_are_close_to_float_and_not_identical(tiny_model_dir):
    f = make_engine(tiny_model_dir, "float")
    q = make_engine(tiny_model_dir, "int8", decode_mode="int8w-bf16")
    assert q.info["decode_mode"] == "int8w-bf16"
    heads = [m for m in (q.backend.lm_head, q.backend.layers[0][2]["down"].base)]
    assert all(isinstance(m, fast_llama.Int8Linear) and m.act_dtype == torch.bfloat16 for m in heads)
    fl, ql = _first_logits(f), _first_logits(q)
    rel = ((ql - fl).norm() / fl.norm()).item()
    assert 0 < rel < INT8_BOUNDS["int8w-bf16"], rel


def test_lora_moves_bf16_mode_like_it_moves_float(tiny_model_dir, lora_a):
    f = make_engine(tiny_model_dir, "float")
    q = make_engine(tiny_model_dir, "int8", decode_mode="int8w-bf16")
    install(f.store, "a", lora_a, tiny_model_dir)
    q.store = f.store
    deltas = {}
    for name, e in (("float", f), ("bf16", q)):
        e.use("base")
        base = _first_logits(e)
        e.use("a")
        deltas[name] = _first_logits(e) - base
    assert q.backend.layers[0][2]["qkv"].lora_a.dtype == torch.float32  # the delta is computed in float
    df, dq = deltas["float"], deltas["bf16"]
    assert df.norm() > 1e-3  # the adapter really changes the output
    assert ((dq - df).norm() / df.norm()).item() < 0.2
    assert torch.nn.functional.cosine_similarity(dq, df, dim=0) > 0.98


def test_cpu_default_is_faithful_and_int8_is_opt_in(tiny_model_dir):
    from medchat.core.engine import ChatEngine

    # issue 14: the default must keep the float model's greedy output; no int8 mode reaches 0.9 agreement,
    # q4-gguf computes the float weights exactly (tests/integration/test_q4_gguf.py)
    assert fast_llama.DEFAULT_CPU_MODE == "q4-gguf"
    engine = ChatEngine(str(tiny_model_dir), store=ProfileStore())
    assert engine.info["decode_mode"] == "float"  # a model directory without a GGUF: float, and why
    assert engine.info["decode_fallback"] == "the base was not converted from a GGUF"
    assert make_engine(tiny_model_dir, "int8").info["decode_mode"] == fast_llama.LOSSY_CPU_MODE


def test_unknown_mode_is_a_user_error(tiny_model_dir):
    from medchat.core.engine import ChatEngine

    with pytest.raises(UserError, match="unknown decode mode 'int4'.*int8w-bf16"):
        ChatEngine(str(tiny_model_dir), decode_mode="int4")


@pytest.mark.parametrize("flag,env,expected", [
    ("dynamic-int8", None, "dynamic-int8"),
    (None, "float", "float"),
    ("int8w-fp32", "dynamic-int8", "int8w-fp32"),  # the flag wins over the environment
    (None, "weight", "int8w-fp32"),  # the older MEDCHAT_QUANT spelling
    (None, None, "float"),  # the default, q4-gguf, on a base with no GGUF
])
def test_decode_mode_flag_and_environment_are_honoured(tiny_model_dir, monkeypatch, flag, env, expected):
    from medchat.app.cli import build_parser
    from medchat.app.cli.common import make_engine as cli_engine

    monkeypatch.delenv("MEDCHAT_QUANT", raising=False)
    monkeypatch.delenv("MEDCHAT_DECODE_MODE", raising=False)
    if env:
        monkeypatch.setenv("MEDCHAT_QUANT" if env == "weight" else "MEDCHAT_DECODE_MODE", env)
    argv = ["ask", "--base", str(tiny_model_dir), "--profile", "base", "hello"]
    if flag:
        argv[1:1] = ["--decode-mode", flag]
    args = build_parser().parse_args(argv)
    assert cli_engine(args).info["decode_mode"] == expected
