"""Ctrl-C at step k leaves the last checkpoint; --resume reaches the same final step and weights."""

import json

import pytest
import torch
from safetensors.torch import load_file

from medchat.app.cli import main
from medchat.core.profiles import ProfileStore
from trainer.config import load_config
from trainer.runs import Run
from trainer.stages import run_stage


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "d.json"
    rows = [{"instruction": f"Question {i} about a cough?", "input": "", "output": f"Answer {i}: rest and fluids."}
            for i in range(6)]
    path.write_text(json.dumps(rows))
    return path


def _cfg(base, data, name):
    # dropout on and 2 epochs of shuffled batches: resume must restore data order and RNG exactly
    return load_config({"stage": "sft", "name": name, "model": {"base": str(base)},
                        "data": {"datasets": [str(data)], "val_size": 0},
                        "lora": {"r": 4, "dropout": 0.1},
                        "training": {"max_steps": 8, "batch_size": 2, "grad_accum": 2, "learning_rate": 3e-3,
                                     "save_steps": 3, "logging_steps": 1}})


def test_interrupted_run_resumes_to_the_same_result(tiny_model_dir, data_file, medchat_home, capsys):
    whole = run_stage(_cfg(tiny_model_dir, data_file, "whole"), quiet=True)

    def ctrl_c(step):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stage(_cfg(tiny_model_dir, data_file, "cut"), quiet=True, on_step=ctrl_c)
    run = Run.latest_for("cut")
    assert run.status()["state"] == "interrupted"
    assert run.latest_checkpoint().name == "step-00000003"  # step 5 was not saved; 3 is intact
    assert not ProfileStore().exists("cut")  # only finished runs are installed
    assert "--resume" in capsys.readouterr().err

    rc = main(["train", "--resume", "--name", "cut", "--quiet"])
    assert rc == 0
    cut = ProfileStore().get("cut")
    assert cut.metrics["steps"] == whole.metrics["steps"] == 8
    assert cut.metrics["train_loss"] == pytest.approx(whole.metrics["train_loss"], rel=1e-4)
    a = load_file(whole.path / "adapter" / "adapter_model.safetensors")
    b = load_file(cut.path / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    steps = [r["step"] for r in run.records()]
    assert steps == list(range(1, 9))  # the log reads as one uninterrupted run

    assert main(["train", "--resume", str(run.dir), "--quiet"]) == 1  # runtime failure
    assert "already finished" in capsys.readouterr().err
