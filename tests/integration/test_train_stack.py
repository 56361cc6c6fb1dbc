"""--from stacks a new adapter on a profile's chain (parents frozen); --continue retrains the parent's."""

import hashlib
import json

import pytest
import torch

from medchat.core.errors import UserError
from medchat.core.profiles import Profile, ProfileStore
from trainer.config import load_config
from trainer.modeling import TRAIN_ADAPTER, load_for_training, trainable_state
from trainer.stages import run_stage
from trainer.stages.loop import causal_loss
from trainer.data.packing import collate
from trainer.data.encoding import Encoded


@pytest.fixture
def parent(tiny_model_dir, lora_a):
    from medchat.core.models import base_id, fingerprint

    return ProfileStore().install(Profile(name="parent", base=base_id(str(tiny_model_dir)), chain=["parent"],
                                          base_fingerprint=fingerprint(tiny_model_dir), stage="sft",
                                          method="lora", system_prompt="Be kind."), lora_a)


def _digest(path):
    return hashlib.sha256((path / "adapter" / "adapter_model.safetensors").read_bytes()).hexdigest()


def _cfg(data, name, **model):
    return load_config({"stage": "sft", "name": name, "model": model, "lora": {"r": 4, "dropout": 0.0},
                        "data": {"datasets": [str(data)], "val_size": 0},
                        "training": {"max_steps": 4, "learning_rate": 5e-3}})


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"conversations": [{"from": "human", "value": f"Q{i}?"},
                                                          {"from": "gpt", "value": f"Answer {i}."}]}) + "\n"
                            for i in range(4)))
    return path


def _one_step(tm):
    enc = Encoded(list(range(5, 25)), [-100] * 10 + list(range(15, 25)))
    batch = collate([enc], [[0]], 0)
    opt = torch.optim.AdamW([p for p in tm.model.parameters() if p.requires_grad], lr=1e-2)
    with torch.enable_grad():
        causal_loss(tm.model, batch).backward()
    opt.step()


def test_from_freezes_parents_and_trains_only_the_new_adapter(parent, data):
    tm = load_for_training(_cfg(data, "child", from_profile="parent"), device="cpu")
    assert tm.chain == ["parent", "child"] and tm.parents == ["parent_0"]
    lora = {n: p for n, p in tm.model.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad == (f".{TRAIN_ADAPTER}." in n) for n, p in lora.items())
    assert set(tm.model.base_model.active_adapters) == {"parent_0", TRAIN_ADAPTER}
    before = {n: p.detach().clone() for n, p in lora.items()}
    _one_step(tm)
    parents = [n for n in lora if ".parent_0." in n]
    assert parents and all(torch.equal(before[n], lora[n]) for n in parents)
    assert any(not torch.equal(before[n], p) for n, p in lora.items() if f".{TRAIN_ADAPTER}." in n)


def test_stacked_training_records_the_chain_and_keeps_the_parent(tiny_model_dir, parent, data):
    from medchat.core.engine import ChatEngine
    from medchat.core.settings import GenerationSettings

    digest = _digest(parent.path)
    child = run_stage(_cfg(data, "child", from_profile="parent"), quiet=True)
    assert child.chain == ["parent", "child"] and child.base == parent.base
    assert child.base_fingerprint == parent.base_fingerprint and child.system_prompt == "Be kind."
    assert _digest(parent.path) == digest
    engine = ChatEngine(str(tiny_model_dir))
    greedy = GenerationSettings(temperature=0.0, max_new_tokens=8)
    msg = [{"role": "user", "content": "Q1?"}]
    engine.use("parent")
    p_out = engine.generate(msg, greedy)
    engine.use("child")
    assert engine.generate(msg, greedy) != p_out


def test_continue_retrains_the_parents_adapter(parent, data, lora_a):
    from safetensors.torch import load_file

    tm = load_for_training(_cfg(data, "again", from_profile="parent", continue_parent=True), device="cpu")
    assert tm.chain == ["again"] and tm.parents == []
    start = trainable_state(tm)
    saved = load_file(lora_a / "adapter_model.safetensors")
    assert start.keys() == saved.keys() and all(torch.equal(start[k], saved[k]) for k in saved)
    prof = run_stage(_cfg(data, "again", from_profile="parent", continue_parent=True), quiet=True)
    assert prof.chain == ["again"]
    cfg = json.loads((prof.path / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == json.loads((lora_a / "adapter_config.json").read_text())["r"]


def test_from_refuses_a_different_base(parent, data, other_model_dir):
    with pytest.raises(UserError, match="was trained on base"):
        load_for_training(_cfg(data, "x", from_profile="parent", base=str(other_model_dir)), device="cpu")


def test_gradient_checkpointing_still_trains(tiny_model_dir, data):
    cfg = _cfg(data, "gc", base=str(tiny_model_dir))
    cfg.training.gradient_checkpointing = True
    tm = load_for_training(cfg, device="cpu")
    before = {n: p.detach().clone() for n, p in tm.model.named_parameters() if p.requires_grad}
    _one_step(tm)
    assert any(not torch.equal(before[n], p) for n, p in tm.model.named_parameters() if n in before)
