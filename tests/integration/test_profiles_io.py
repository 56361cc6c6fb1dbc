"""Importing foreign PEFT adapters and exporting profiles (as one adapter, or as a merged model)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.support.fixtures_models import make_lora_adapter
from medchat.core.errors import UserError
from medchat.core.models import fingerprint
from medchat.core.profile_io import export_adapter, export_merged, import_adapter
from medchat.core.profiles import ProfileStore
from test_engine_support import (MSGS, install, load_hf, make_engine, one_torch_thread,  # noqa: F401
                                 prefill_logits, reference_logits)

TOL = {"rtol": 1e-4, "atol": 1e-4}


@pytest.fixture(scope="module")
def foreign(tiny_model_dir, tmp_path_factory):
    """Made 'elsewhere': other rank, alpha and target modules than our fixtures."""
    return make_lora_adapter(tiny_model_dir, tmp_path_factory.mktemp("foreign"), seed=11, r=2, alpha=16,
                             target_modules=["q_proj", "v_proj", "down_proj"])


@pytest.fixture(scope="module")
def for_other_base(other_model_dir, tmp_path_factory):
    return make_lora_adapter(other_model_dir, tmp_path_factory.mktemp("for-other"), seed=3)


def pickled_copy(src, dst):
    """The same adapter with only adapter_model.bin (pickle) weights."""
    shutil.copytree(src, dst)
    torch.save(load_file(str(dst / "adapter_model.safetensors")), dst / "adapter_model.bin")
    (dst / "adapter_model.safetensors").unlink()
    return dst


# --- import ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["float", "hf"])
def test_imported_foreign_adapter_is_usable_and_matches_peft(tiny_model_dir, foreign, backend):
    store = ProfileStore()
    prof = import_adapter(store, foreign, "foreign", str(tiny_model_dir))
    assert prof.stage == "import" and prof.chain == ["foreign"]
    assert prof.base == str(tiny_model_dir.resolve()) and prof.base_fingerprint == fingerprint(tiny_model_dir)
    engine = make_engine(tiny_model_dir, backend)
    base = prefill_logits(engine)
    engine.use("foreign")
    got = prefill_logits(engine)
    ref = reference_logits(load_hf(tiny_model_dir, foreign), engine.prompt_ids(MSGS, 6))[-1]
    torch.testing.assert_close(got, ref, **TOL)
    assert not torch.allclose(got, base, atol=1e-3)


def test_import_takes_the_base_from_adapter_config_when_not_given(tiny_model_dir, foreign):
    prof = import_adapter(ProfileStore(), foreign, "auto-base", None, description="from a colleague")
    assert prof.base_fingerprint == fingerprint(tiny_model_dir) and prof.description == "from a colleague"


def test_import_refuses_what_is_not_an_adapter_dir(tiny_model_dir, lora_a, tmp_path):
    store = ProfileStore()
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    cases = [(tmp_path / "file.txt", "is not a directory"), (tmp_path / "missing", "is not a directory"),
             (tmp_path / "empty", "no adapter_config.json")]
    for src, needle in cases:
        with pytest.raises(UserError, match=needle) as exc:
            import_adapter(store, src, "x", str(tiny_model_dir))
        assert "\n" not in str(exc.value)
    assert store.names() == ["base"] and list(store.root.iterdir()) == []


def test_import_of_pickled_weights_needs_allow_pickle(tiny_model_dir, lora_a, tmp_path):
    store = ProfileStore()
    src = pickled_copy(lora_a, tmp_path / "pickled")
    with pytest.raises(UserError, match="only pickled weights.*--allow-pickle") as exc:
        import_adapter(store, src, "pk", str(tiny_model_dir))
    assert "\n" not in str(exc.value) and store.names() == ["base"]
    import_adapter(store, src, "pk", str(tiny_model_dir), allow_pickle=True)
    install(store, "orig", lora_a, tiny_model_dir)
    for backend in ("float", "hf"):  # the trusted pickle loads and equals the safetensors original
        engine = make_engine(tiny_model_dir, backend)
        engine.use("pk")
        pk = prefill_logits(engine)
        engine.use("orig")
        torch.testing.assert_close(pk, prefill_logits(engine), rtol=1e-6, atol=1e-6)


def test_import_refuses_an_adapter_made_for_another_base(tiny_model_dir, for_other_base):
    store = ProfileStore()
    with pytest.raises(UserError, match="does not fit this base.*made for another base model") as exc:
        import_adapter(store, for_other_base, "wrong", str(tiny_model_dir))
    assert "\n" not in str(exc.value) and store.names() == ["base"]
    # against its own base it imports fine, but this engine still refuses it by fingerprint
    import_adapter(store, for_other_base, "other", None)
    with pytest.raises(UserError, match="was made for base"):
        make_engine(tiny_model_dir).use("other")


def test_import_refuses_an_adapter_for_modules_the_base_lacks(tiny_model_dir, lora_a, tmp_path):
    dst = shutil.copytree(lora_a, tmp_path / "renamed")
    tensors = load_file(str(dst / "adapter_model.safetensors"))
    tensors = {k.replace("self_attn.q_proj", "self_attn.qkv_fused"): v for k, v in tensors.items()}
    save_file(tensors, str(dst / "adapter_model.safetensors"))
    with pytest.raises(UserError, match="targets '.*qkv_fused', which this base does not have"):
        import_adapter(ProfileStore(), dst, "odd", str(tiny_model_dir))


def test_import_refuses_an_existing_name_and_bad_names(tiny_model_dir, lora_a):
    store = ProfileStore()
    import_adapter(store, lora_a, "a", str(tiny_model_dir))
    with pytest.raises(UserError, match="already exists"):
        import_adapter(store, lora_a, "a", str(tiny_model_dir))
    with pytest.raises(UserError, match="invalid profile name"):
        import_adapter(store, lora_a, "../a", str(tiny_model_dir))


# --- export ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("parent", ["lora_a", "foreign"])
def test_exported_stacked_chain_reimports_as_one_adapter_with_the_same_logits(
        tiny_model_dir, lora_b, parent, request, tmp_path):
    store = ProfileStore()
    install(store, "p", request.getfixturevalue(parent), tiny_model_dir)
    install(store, "pb", lora_b, tiny_model_dir, chain=["p"])
    out = export_adapter(store, "pb", tmp_path / "flat")
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and (out / "medchat_profile.toml").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    import_adapter(store, out, "flat", str(tiny_model_dir))
    for backend in ("float", "hf"):
        engine = make_engine(tiny_model_dir, backend)
        engine.use("pb")
        chain = prefill_logits(engine)
        engine.use("flat")
        assert engine.profile.chain == ["flat"]
        torch.testing.assert_close(prefill_logits(engine), chain, **TOL)


def test_export_of_a_single_adapter_is_a_faithful_copy(tiny_model_dir, lora_a, tmp_path):
    store = ProfileStore()
    install(store, "a", lora_a, tiny_model_dir)
    out = export_adapter(store, "a", tmp_path / "out")
    assert (out / "adapter_model.safetensors").read_bytes() == (lora_a / "adapter_model.safetensors").read_bytes()


@pytest.mark.parametrize("chained", [False, True])
def test_export_in_16_bit_halves_the_file_and_keeps_the_logits(tiny_model_dir, lora_a, lora_b, chained, tmp_path):
    # how the shipped doctor is made from a trained (float32) profile
    store = ProfileStore()
    install(store, "a", lora_a, tiny_model_dir)
    install(store, "ab", lora_b, tiny_model_dir, chain=["a"])
    name = "ab" if chained else "a"
    full = export_adapter(store, name, tmp_path / "full")
    half = export_adapter(store, name, tmp_path / "half", dtype="float16")
    weights = load_file(str(half / "adapter_model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float16}
    assert weights.keys() == load_file(str(full / "adapter_model.safetensors")).keys()
    assert (half / "adapter_model.safetensors").stat().st_size < 0.6 * (full / "adapter_model.safetensors").stat().st_size
    import_adapter(store, half, "half", str(tiny_model_dir))
    engine = make_engine(tiny_model_dir, "float")
    engine.use(name)
    reference = prefill_logits(engine)
    engine.use("half")
    torch.testing.assert_close(prefill_logits(engine), reference, rtol=1e-2, atol=1e-2)
    with pytest.raises(UserError, match="unknown --dtype"):
        export_adapter(store, name, tmp_path / "odd", dtype="int3")
    assert not (tmp_path / "odd").exists()


def test_export_merged_loads_in_plain_transformers_with_the_engines_logits(tiny_model_dir, lora_a, lora_b,
                                                                           tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    store = ProfileStore()
    install(store, "a", lora_a, tiny_model_dir)
    install(store, "ab", lora_b, tiny_model_dir, chain=["a"])
    out = export_merged(store, "ab", tmp_path / "merged")
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert not any("lora" in n for n, _ in model.named_parameters())
    engine = make_engine(tiny_model_dir, "float")
    engine.use("ab")
    ids = engine.prompt_ids(MSGS, 6)
    assert tok.apply_chat_template(MSGS, tokenize=True, add_generation_prompt=True)["input_ids"] == ids
    torch.testing.assert_close(reference_logits(model, ids)[-1], prefill_logits(engine), **TOL)
    engine.use("base")
    assert not torch.allclose(reference_logits(model, ids)[-1], prefill_logits(engine), atol=1e-3)


def test_export_refusals(tiny_model_dir, lora_a, tmp_path):
    store = ProfileStore()
    install(store, "a", lora_a, tiny_model_dir)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="exists and is not empty"):
        export_adapter(store, "a", tmp_path / "busy")
    with pytest.raises(UserError, match="exists and is not empty"):
        export_merged(store, "a", tmp_path / "busy")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("mine")
    with pytest.raises(UserError, match="--force"):
        export_adapter(store, "a", tmp_path / "file")
    assert export_adapter(store, "a", tmp_path / "busy", force=True) == tmp_path / "busy"
    assert (tmp_path / "busy" / "adapter_config.json").is_file() and not (tmp_path / "busy" / "keep.txt").exists()
    assert export_adapter(store, "a", tmp_path / "file", force=True).is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers of the replaced ones
    with pytest.raises(UserError, match="'base' has no adapter"):
        export_adapter(store, "base", tmp_path / "b")
    with pytest.raises(UserError, match="unknown profile"):
        export_adapter(store, "nope", tmp_path / "c")
