"""--method qlora: a 4-bit NF4 base (double quant, bf16 compute) trains on CPU and installs a profile."""

import json

import pytest
import torch

from trainer.config import load_config
from trainer.modeling import load_for_training, make_optimizer
from trainer.stages import run_stage
from trainer.stages.loop import causal_loss
from trainer.data.encoding import Encoded
from trainer.data.packing import collate

pytest.importorskip("bitsandbytes")


@pytest.fixture
def cfg(tiny_model_dir, tmp_path):
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"instruction": f"Q{i}?", "input": "", "output": f"Answer {i}."} for i in range(4)]))
    return load_config({"stage": "sft", "name": "q", "model": {"base": str(tiny_model_dir), "method": "qlora"},
                        "data": {"datasets": [str(data)], "val_size": 0}, "lora": {"r": 4, "dropout": 0.0},
                        "training": {"max_steps": 3, "learning_rate": 1e-2}})


def test_qlora_loads_4bit_and_steps_on_cpu(cfg):
    import bitsandbytes as bnb

    tm = load_for_training(cfg, device="cpu")
    assert tm.quantized
    quant = [m for m in tm.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quant and quant[0].weight.quant_type == "nf4" and quant[0].weight.quant_state.nested
    assert quant[0].compute_dtype == torch.bfloat16
    opt = make_optimizer(tm, cfg.training)
    assert isinstance(opt, torch.optim.AdamW)  # paged optimizers need CUDA
    lora = {n: p.detach().clone() for n, p in tm.model.named_parameters() if p.requires_grad}
    batch = collate([Encoded(list(range(5, 25)), [-100] * 10 + list(range(15, 25)))], [[0]], 0)
    with torch.enable_grad():
        loss = causal_loss(tm.model, batch)
        loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(lora[n], p) for n, p in tm.model.named_parameters() if n in lora)


def test_qlora_run_installs_a_profile(cfg):
    prof = run_stage(cfg, quiet=True)
    assert prof.method == "qlora" and prof.chain == ["q"] and prof.metrics["steps"] == 3
    assert (prof.path / "adapter" / "adapter_model.safetensors").exists()
