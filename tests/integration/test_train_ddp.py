"""`accelerate launch` with 2 CPU processes (DDP over gloo) trains like one process with the same
global batch: same steps, same tokens, same adapter weights (loss is normalised over the global step)."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from medchat.core.profiles import ProfileStore
from trainer.config import load_config
from trainer.stages import run_stage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tiny_model_dir, tmp_path):
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}: rest."}
                                for i in range(8)]))
    common = ["--stage", "sft", "--base", str(tiny_model_dir), "--dataset", str(data), "--max-steps", "4",
              "--batch-size", "1", "--val-size", "0", "--lora-r", "4", "--lora-dropout", "0",
              "--learning-rate", "5e-3", "--save-steps", "2", "--logging-steps", "1", "--quiet"]
    # --multi_gpu is accelerate's DDP launcher; without GPUs it runs on CPU with gloo
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "medchat", "train", *common,
           "--grad-accum", "2", "--name", "ddp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("installed profile 'ddp'") == 1  # only the main process installs

    cfg = load_config({"stage": "sft", "name": "single", "model": {"base": str(tiny_model_dir)},
                       "data": {"datasets": [str(data)], "val_size": 0}, "lora": {"r": 4, "dropout": 0.0},
                       "training": {"max_steps": 4, "batch_size": 1, "grad_accum": 4, "learning_rate": 5e-3,
                                    "logging_steps": 1}})
    single = run_stage(cfg, quiet=True)
    ddp = ProfileStore().get("ddp")
    assert ddp.metrics["steps"] == single.metrics["steps"] == 4
    assert ddp.metrics["tokens"] == single.metrics["tokens"]
    assert ddp.metrics["train_loss"] == pytest.approx(single.metrics["train_loss"], rel=1e-4)
    a = load_file(ddp.path / "adapter" / "adapter_model.safetensors")
    b = load_file(single.path / "adapter" / "adapter_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-3)
