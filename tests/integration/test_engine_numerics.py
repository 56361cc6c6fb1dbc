"""The fast path against transformers' own forward on the tiny Llama: float matches, int8 stays close."""

from __future__ import annotations

import pytest
import torch

from medchat.core.settings import GenerationSettings
from test_engine_support import INT8_BOUNDS, MSGS, Trace, install, load_hf, make_engine, one_torch_thread  # noqa: F401

TOL = {"rtol": 1e-4, "atol": 1e-4}


@pytest.fixture(scope="module")
def hf_model(tiny_model_dir):
    return load_hf(tiny_model_dir)


def prompt(engine) -> list[int]:
    return engine.prompt_ids(MSGS, 8)


def hf_logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


def test_float_prefill_equals_transformers(tiny_model_dir, hf_model):
    engine = make_engine(tiny_model_dir, "float")
    ids = prompt(engine)
    torch.testing.assert_close(engine.backend.forward(ids), hf_logits(hf_model, ids)[-1], **TOL)


def test_float_token_by_token_equals_transformers(tiny_model_dir, hf_model):
    engine = make_engine(tiny_model_dir, "float")
    ids = prompt(engine)
    ref = hf_logits(hf_model, ids)
    for i, t in enumerate(ids):  # a decode step per token, through the KV cache
        torch.testing.assert_close(engine.backend.forward([t]), ref[i], **TOL)
    assert engine.backend.cached_ids == ids


def test_prefill_then_decode_past_the_kv_buffer_size(tiny_model_dir, hf_model):
    engine = make_engine(tiny_model_dir, "float")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, len(engine.tokenizer), (300,), generator=g).tolist()  # > the 256-slot first buffer
    ref = hf_logits(hf_model, ids)
    torch.testing.assert_close(engine.backend.forward(ids[:250]), ref[249], **TOL)
    for i in range(250, 300):
        torch.testing.assert_close(engine.backend.forward([ids[i]]), ref[i], **TOL)
    engine.backend.truncate(120)  # rewind and take another branch: stale K/V beyond 120 must not leak
    torch.testing.assert_close(engine.backend.forward(ids[120:200]), ref[199], **TOL)


def test_greedy_generation_matches_transformers_generate(tiny_model_dir, hf_model, monkeypatch):
    engine = make_engine(tiny_model_dir, "float")
    trace = Trace(engine, monkeypatch)
    settings = GenerationSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=10)
    _, tokens, _ = trace.run(settings=settings)
    ids = prompt(engine)
    with torch.inference_mode():
        out = hf_model.generate(torch.tensor([ids]), max_new_tokens=len(tokens), do_sample=False,
                                eos_token_id=None, pad_token_id=engine.tokenizer.pad_token_id)
    assert out[0, len(ids):].tolist() == tokens


@pytest.fixture(params=sorted(INT8_BOUNDS))
def int8_mode(request):
    return request.param


def test_int8_stays_within_a_small_relative_error_of_float(tiny_model_dir, lora_a, int8_mode):
    f = make_engine(tiny_model_dir, "float")
    q = make_engine(tiny_model_dir, "int8", decode_mode=int8_mode)
    assert q.info["decode_mode"] == int8_mode
    assert q.backend.quantized and not f.backend.quantized
    ids = prompt(f)
    install(f.store, "a", lora_a, tiny_model_dir)  # both engines read the same store
    for profile in ("base", "a"):
        f.use(profile)
        q.use(profile)
        f.backend.reset()
        q.backend.reset()
        steps = [(f.backend.forward(ids), q.backend.forward(ids))]
        steps += [(f.backend.forward([t]), q.backend.forward([t])) for t in (7, 99, 250)]
        for fl, ql in steps:
            rel = ((ql - fl).norm() / fl.norm()).item()
            assert 0 < rel < INT8_BOUNDS[int8_mode], (profile, rel)  # quantized, but close


def test_int8_prefill_equals_int8_token_by_token(tiny_model_dir, int8_mode):
    engine = make_engine(tiny_model_dir, "int8", decode_mode=int8_mode)
    ids = prompt(engine)
    whole = engine.backend.forward(ids)
    engine.backend.reset()
    for t in ids:
        last = engine.backend.forward([t])
    if int8_mode == "int8w-fp32":  # float activations: batch composition cannot change the numbers
        torch.testing.assert_close(last, whole, **TOL)
    else:  # dynamic activation scales, or bf16 kernels that sum in another order per batch size
        rel = ((last - whole).norm() / whole.norm()).item()
        assert rel < INT8_BOUNDS[int8_mode], rel
