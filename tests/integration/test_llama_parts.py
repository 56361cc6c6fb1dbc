"""The fast path read straight from a model directory (engine/llama_parts.from_dir) must compute what
the same path built from the transformers model computes, and must step aside for models it does not
cover so they load through transformers."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from medchat.core.engine import fast_llama, llama_parts
from test_engine_support import MSGS, make_engine, one_torch_thread  # noqa: F401

IDS = [5, 17, 42, 9, 33, 2, 61]


def hf_model(model_dir, cls_name="AutoModelForCausalLM"):
    import transformers

    return getattr(transformers, cls_name).from_pretrained(model_dir, dtype=torch.float32).eval()


def run(backend: fast_llama.FastLlama, ids=IDS, steps=3) -> list[torch.Tensor]:
    """A prefill, then `steps` single-token decodes; every logits vector along the way."""
    backend.reset()
    out = [backend.forward(ids)]
    for _ in range(steps):
        out.append(backend.forward([int(out[-1].argmax())]))
    return out


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["float", "int8w-bf16"])
def test_parts_from_the_directory_compute_what_the_transformers_model_computes(tiny_model_dir, lora_a, mode):
    from_dir = fast_llama.FastLlama(llama_parts.from_dir(tiny_model_dir, torch.float32, "cpu"), mode=mode)
    from_hf = fast_llama.FastLlama(llama_parts.from_hf(hf_model(tiny_model_dir)), mode=mode)
    same(run(from_dir), run(from_hf))
    for b in (from_dir, from_hf):
        b.set_chain([("a", lora_a)])
    with_lora = run(from_dir)
    same(with_lora, run(from_hf))
    assert not torch.allclose(with_lora[0], run(fast_llama.FastLlama(
        llama_parts.from_dir(tiny_model_dir, torch.float32, "cpu"), mode=mode))[0])  # the adapter counts


def test_the_directory_path_matches_transformers_own_forward(tiny_model_dir):
    """Against transformers' own model, not only its parts: norms and rotary are re-implemented here."""
    model = hf_model(tiny_model_dir)
    backend = fast_llama.FastLlama(llama_parts.from_dir(tiny_model_dir, torch.float32, "cpu"))
    with torch.no_grad():
        ref = model(torch.tensor([IDS])).logits[0, -1]
    torch.testing.assert_close(backend.forward(IDS), ref, rtol=1e-5, atol=1e-5)


def test_chat_engine_reads_the_directory_and_builds_no_transformers_model(tiny_model_dir):
    engine = make_engine(tiny_model_dir, "float")
    assert engine.info["loader"] == "safetensors" and engine.hf_model() is None
    assert engine.context_limit == 512  # from config.json
    hf = make_engine(tiny_model_dir, "hf")
    assert hf.info["loader"] == "transformers"


def test_untied_head_and_attention_biases_qwen2(tmp_path):
    """A Qwen2-shaped model: q/k/v biases and a separate lm_head are read from the files."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.support.fixtures_models import build_tokenizer

    tok = build_tokenizer(tmp_path)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=False, rope_theta=50000.0)
    torch.manual_seed(3)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.08)
    model.save_pretrained(tmp_path, safe_serialization=True)
    parts = llama_parts.from_dir(tmp_path, torch.float32, "cpu")
    assert parts.layers[0]["q_proj"].bias is not None
    assert not torch.equal(parts.head.weight, parts.embed.weight)
    with torch.no_grad():
        ref = model.eval()(torch.tensor([IDS])).logits[0, -1]
    torch.testing.assert_close(fast_llama.FastLlama(parts).forward(IDS), ref, rtol=1e-5, atol=1e-5)


def _copy_with_config(src, dst, **changes):
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize("changes", [
    {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}},
    {"model_type": "gpt_neox"},
    {"hidden_act": "gelu"},
    {"quantization_config": {"quant_method": "bitsandbytes"}},
])
def test_models_it_does_not_cover_are_left_to_transformers(tiny_model_dir, tmp_path, changes):
    assert llama_parts.from_dir(_copy_with_config(tiny_model_dir, tmp_path / "m", **changes),
                                torch.float32, "cpu") is None


def test_no_safetensors_or_an_untied_model_without_a_head_is_left_to_transformers(tiny_model_dir, tmp_path):
    no_weights = _copy_with_config(tiny_model_dir, tmp_path / "a")
    (no_weights / "model.safetensors").unlink()
    assert llama_parts.from_dir(no_weights, torch.float32, "cpu") is None
    untied = _copy_with_config(tiny_model_dir, tmp_path / "b", tie_word_embeddings=False)
    assert llama_parts.from_dir(untied, torch.float32, "cpu") is None



def test_the_direct_tokenizer_is_the_one_autotokenizer_gives(tiny_model_dir, tmp_path):
    """load_tokenizer skips AutoTokenizer for the generic tokenizers backend: same class, same ids;
    any other tokenizer class still goes through AutoTokenizer."""
    from transformers import AutoTokenizer

    from medchat.core.models import load_tokenizer

    direct, auto = load_tokenizer(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
    assert type(direct) is type(auto)
    assert direct.apply_chat_template(MSGS, add_generation_prompt=True) == \
        auto.apply_chat_template(MSGS, add_generation_prompt=True)
    assert (direct.eos_token_id, direct.pad_token_id) == (auto.eos_token_id, auto.pad_token_id)

    other = _copy_with_config(tiny_model_dir, tmp_path / "gpt2tok")
    cfg = json.loads((other / "tokenizer_config.json").read_text())
    (other / "tokenizer_config.json").write_text(json.dumps({**cfg, "tokenizer_class": "GPT2Tokenizer"}))
    assert type(load_tokenizer(other)) is type(AutoTokenizer.from_pretrained(other))
