"""The whole covid recipe (sft -> rm -> ppo, the shipped datasets) under `accelerate launch` with 2 CPU
processes on the tiny model: one run dir and one installed profile per stage, each loadable.

Launcher: `accelerate launch --multi_gpu --num_processes 2` (DDP over gloo without GPUs), as in
test_train_ddp.py. `--cpu --num_processes 2` is no use here: accelerate's CPU launch starts a single
process unless it is given an MPI host file, so it would not test ranks at all.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from medchat.core import paths
from medchat.core.profiles import ProfileStore

STAGES = (("sft", "covid-sft"), ("rm", "covid-rm"), ("ppo", "covid-ppo"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_covid_recipe_under_two_ranks_installs_each_stage_once(tiny_model_dir, medchat_home):
    # the recipe's own stages and datasets, shrunk to a few rows and steps; the tiny model reads 512 tokens
    small = ["--base", str(tiny_model_dir), "--cutoff-len", "512", "--batch-size", "2", "--max-samples", "8",
             "--lora-r", "4", "--max-steps", "2", "--save-steps", "100", "--set", "ppo.steps=1",
             "--set", "ppo.rollout_batch_size=2", "--set", "ppo.mini_batch_size=2", "--set", "ppo.max_new_tokens=4",
             "--set", "ppo.ppo_epochs=1", "--quiet"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "medchat", "train", "recipe", "covid", *small]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("recipe covid done: installed covid-sft, covid-rm, covid-ppo") == 1  # main rank only
    assert out.stderr.count("[1/3] sft -> covid-sft\n") == 1

    runs = sorted(p.name for p in paths.runs_dir().iterdir() if p.is_dir())
    assert len(runs) == len(STAGES), runs  # one run dir per stage, shared by both ranks
    store = ProfileStore()
    trained = [n for n in store.names() if not store.get(n).is_base]
    assert sorted(trained) == sorted(name for _, name in STAGES)
    for stage, name in STAGES:
        (run,) = [r for r in runs if r.startswith(f"{name}-")]
        status = json.loads((paths.runs_dir() / run / "status.json").read_text())
        assert status["state"] == "installed" and status["profile"] == name
        profile = store.get(name)
        assert profile.stage == stage and profile.recipe == "covid"
        assert (profile.path / "adapter" / "adapter_config.json").exists()

    # each profile loads: the reward one scores, the chat ones answer through the normal CLI
    from medchat.app.cli import main
    from trainer.reward_model import load_reward_model

    assert load_reward_model("covid-rm").score([[{"role": "user", "content": "hi"},
                                                  {"role": "assistant", "content": "hello"}]]).shape == (1,)
    for name in ("covid-sft", "covid-ppo"):
        assert main(["ask", "--base", str(tiny_model_dir), "--profile", name, "--no-kb", "--max-new-tokens", "3",
                     "--seed", "1", "hello"]) == 0
