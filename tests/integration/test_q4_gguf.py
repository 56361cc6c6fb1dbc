"""The q4-gguf decode mode: the fast path multiplying by a GGUF's own Q4_1 / Q8_0 groups must compute what
the float model (their dequantisation) computes, read the groups from a cache on later loads, and fall
back to float, saying why, whenever the file does not match the weights."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from medchat.core.engine import fast_llama, gguf_blocks, llama_parts, qgemv
from test_engine_support import one_torch_thread  # noqa: F401
from test_llama_parts import IDS, run

gguf = pytest.importorskip("gguf")
Q4_1, Q8_0 = gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q8_0


@pytest.fixture(scope="module")
def kernel():
    module = qgemv.load()
    if module is None:
        pytest.skip(f"the 4-bit kernel cannot be built here: {qgemv.unavailable()}")
    return module


# two decode paths sum in float32 in other orders: ~1e-5 apart, up to 1.7e-5 seen on a busy machine
STEP_TOL = {"rtol": 1e-3, "atol": 1e-4}


def quantized_copy(model_dir, out_dir):
    """A copy of the tiny model whose float weights are the dequantisation of Q4_1 (projections) and Q8_0
    (tied embedding) groups, and the GGUF holding those groups, q/k rows stored as llama.cpp stores them."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, out_dir)
    weights = load_file(str(out_dir / "model.safetensors"))
    cfg = llama_parts.from_dir(out_dir, torch.float32, "cpu").config
    writer = gguf.GGUFWriter(str(out_dir / "tiny.gguf"), "llama")
    heads = {"q_proj": cfg.num_attention_heads, "k_proj": cfg.num_key_value_heads}
    for i in range(cfg.num_hidden_layers):
        for proj, name in gguf_blocks.GGUF_NAMES.items():
            key = f"model.layers.{i}.{'self_attn' if proj[0] in 'qkvo' else 'mlp'}.{proj}.weight"
            hf = weights[key].numpy()
            rows = gguf_blocks._qk_rows(hf.shape[0], heads[proj]) if proj in heads else np.arange(hf.shape[0])
            stored = np.empty_like(hf)
            stored[rows] = hf
            blocks = gguf.quants.quantize(stored, Q4_1)
            writer.add_tensor(f"blk.{i}.{name}.weight", blocks, raw_dtype=Q4_1)
            weights[key] = torch.from_numpy(np.ascontiguousarray(gguf.quants.dequantize(blocks, Q4_1)[rows]))
    embed = weights["model.embed_tokens.weight"].numpy()
    blocks = gguf.quants.quantize(embed, Q8_0)
    writer.add_tensor("token_embd.weight", blocks, raw_dtype=Q8_0)
    weights["model.embed_tokens.weight"] = torch.from_numpy(gguf.quants.dequantize(blocks, Q8_0))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    return out_dir, out_dir / "tiny.gguf"


@pytest.fixture(scope="module")
def quantized(tiny_model_dir, tmp_path_factory):
    return quantized_copy(tiny_model_dir, tmp_path_factory.mktemp("q4") / "model")


def test_kernel_matches_the_dequantised_weights(kernel):
    gen = torch.Generator().manual_seed(0)
    n, k = 96, 128
    q4 = gguf_blocks.Q4Rows(torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, generator=gen),
                            torch.rand(n, k // 32, generator=gen) * 0.02, -torch.rand(n, k // 32, generator=gen) * 0.1)
    q8 = gguf_blocks.Q8Rows(torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=gen),
                            torch.rand(n, k // 32, generator=gen) * 0.01)
    x = torch.randn(k, generator=gen)
    torch.testing.assert_close(kernel.q4_1_gemv(x, q4.q, q4.d, q4.m), q4.dequantize() @ x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(kernel.q8_0_gemv(x, q8.q, q8.d), q8.dequantize() @ x, rtol=1e-5, atol=1e-6)


def test_q4_gguf_decodes_as_the_float_model_and_caches_the_groups(kernel, quantized, medchat_home, monkeypatch):
    model_dir, path = quantized
    parts = llama_parts.from_dir(model_dir, torch.float32, "cpu")
    reference = run(fast_llama.FastLlama(parts, mode="float"), steps=6)
    backend = fast_llama.FastLlama(parts, mode="q4-gguf", gguf=path)
    assert (backend.mode, backend.fallback_reason) == ("q4-gguf", "")
    assert isinstance(backend.lm_head, fast_llama.BlockLinear)  # the Q8_0 head too
    got = run(backend, steps=6)
    assert [int(x.argmax()) for x in got] == [int(x.argmax()) for x in reference]
    for a, b in zip(got, reference):
        torch.testing.assert_close(a, b, **STEP_TOL)
    assert len(list(medchat_home.rglob("tiny.groups.safetensors"))) == 1
    monkeypatch.setattr(gguf_blocks, "read", lambda *a: pytest.fail("parsed the GGUF again"))
    again = run(fast_llama.FastLlama(parts, mode="q4-gguf", gguf=path), steps=6)
    for a, b in zip(again, got):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_q4_gguf_falls_back_to_float_and_says_why(kernel, quantized, tiny_model_dir):
    _, path = quantized
    other = llama_parts.from_dir(tiny_model_dir, torch.float32, "cpu")  # the weights before quantising
    backend = fast_llama.FastLlama(other, mode="q4-gguf", gguf=path)
    assert backend.mode == "float" and "does not hold Q4_1 groups matching" in backend.fallback_reason
    assert not isinstance(backend.lm_head, fast_llama.BlockLinear)
    no_file = fast_llama.FastLlama(other, mode="q4-gguf", gguf=None)
    assert no_file.mode == "float" and "not converted from a GGUF" in no_file.fallback_reason
    torch.testing.assert_close(run(backend)[-1], run(fast_llama.FastLlama(other, mode="float"))[-1])


def test_the_compiled_step_decodes_as_the_python_path(kernel, quantized, lora_a, lora_b):
    """q4-gguf decodes each token in one compiled call (engine/q4_step.py); it must give the logits the
    Python path gives, with no adapter, one, a stacked chain and none again, past the first cache growth."""
    model_dir, path = quantized
    parts = llama_parts.from_dir(model_dir, torch.float32, "cpu")
    compiled = fast_llama.FastLlama(parts, mode="q4-gguf", gguf=path)
    python = fast_llama.FastLlama(parts, mode="q4-gguf", gguf=path)
    assert compiled._step is not None
    python._step = None
    # the caches start at 256 positions: they grow mid-decode after the first prompt, in the prefill of the second
    prompts = [[(i * 7) % 60 + 2 for i in range(n)] for n in (250, 300)]
    outputs = []
    for chain in ([], [("a", lora_a)], [("a", lora_a), ("b", lora_b)], []):
        compiled.set_chain(chain)
        python.set_chain(chain)
        for prompt in prompts:
            got, ref = run(compiled, prompt, steps=12), run(python, prompt, steps=12)
            assert [int(x.argmax()) for x in got] == [int(x.argmax()) for x in ref]
            for a, b in zip(got, ref):
                torch.testing.assert_close(a, b, **STEP_TOL)
        outputs.append(got[-1])
    for x, y in ((outputs[0], outputs[1]), (outputs[1], outputs[2])):  # each adapter moves the logits far more
        assert (x - y).abs().max() > 100 * STEP_TOL["atol"]
    torch.testing.assert_close(outputs[3], outputs[0], rtol=0, atol=0)


def test_a_built_kernel_loads_without_torchs_build_tools(kernel):
    """Later starts import the built module directly: torch's loader imports setuptools (0.3 s a start)."""
    import subprocess
    import sys

    code = ("import sys; from medchat.core.engine import qgemv; m = qgemv.load(); "
            "print(m is not None and hasattr(m, 'Q4Decoder'), 'torch.utils.cpp_extension' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
