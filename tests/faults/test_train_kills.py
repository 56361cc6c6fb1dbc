"""Real training killed: a two-stage tiny `medchat train recipe` child is SIGKILLed during a checkpoint
save, while a profile is being installed, and between stages; after each kill every listed profile
loads and nothing half-installed shows, and re-running the recipe resumes and installs the rest."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness import KILLS, child_env, hidden_leftovers, kill_on_line

pytestmark = pytest.mark.slow  # five real training processes, about a minute

TRAIN_CHILD = Path(__file__).with_name("train_child.py")
STAGES = ("f-sft", "f-sft2")


def _recipe(tmp_path: Path, base: Path) -> Path:
    data = tmp_path / "sft.json"
    data.write_text(json.dumps([{"instruction": f"question {i} about a fever", "input": "",
                                 "output": "Drink fluids and rest."} for i in range(6)]))
    step = {"dataset": str(data), "val_size": 0, "max_steps": 3}
    recipe = {"defaults": {"base": str(base), "lora": {"r": 2, "dropout": 0.0}, "cutoff_len": 64,
                           "batch_size": 2, "logging_steps": 1, "save_steps": 1, "warmup_ratio": 0.0},
              "stages": [{"stage": "sft", "name": STAGES[0], **step},
                         {"stage": "sft", "name": STAGES[1], "from": STAGES[0], **step}]}
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _check(expect_installed: list[str]) -> None:
    """What a fresh process finds after the kill."""
    from medchat.core.profiles import ProfileStore
    from trainer.runs import Run

    store = ProfileStore()  # opening sweeps what an interrupted install left
    assert hidden_leftovers(store.root) == [], "a half-installed profile is left in the store"
    names = store.names()
    for name in names:
        prof = store.get(name)  # every listed profile loads, adapter and stack included
        if not prof.is_base:
            assert (store.adapter_dir(name) / "adapter_model.safetensors").is_file(), f"{name}: no weights"
            assert [d.is_dir() for _n, d in store.chain_dirs(prof)] == [True] * len(prof.chain)
    assert [n for n in names if n in STAGES] == expect_installed, f"installed {names}, expected {expect_installed}"
    for name in STAGES:
        run = Run.latest_for(name)
        if run is not None and run.checkpoints_dir.exists():
            run.latest_checkpoint()  # drops the .tmp-step-* a kill mid-save left
            assert all((c / "COMPLETE").exists() for c in run.checkpoints_dir.iterdir()), "partial checkpoint"


def test_a_killed_recipe_resumes_and_installs_every_stage(tmp_path, tiny_model_dir, monkeypatch):
    from medchat.core.profiles import ProfileStore

    home = tmp_path / "home"
    monkeypatch.setenv("MEDCHAT_HOME", str(home))
    recipe = _recipe(tmp_path, tiny_model_dir)
    log = tmp_path / "children.log"
    sft, sft2 = STAGES
    # (where the child is held and killed, the profiles that must be installed afterwards)
    kills = [(f"save {sft} 2", []),  # mid-stage, its step-2 checkpoint half saved
             (f"install {sft}", []),  # the first profile staged, not yet renamed in
             (f"before {sft2}", [sft]),  # between stages
             (f"save {sft2} 2", [sft])]  # mid second stage
    started = time.monotonic()
    failures = []
    for i, (marker, expect) in enumerate(kills):
        argv = [sys.executable, str(TRAIN_CHILD), marker.replace(" ", ":"), "train", "recipe", str(recipe), "--quiet"]
        try:
            kill_on_line(argv, "at " + marker, home, log)
            _check(expect)
        except Exception as exc:
            failures.append(f"kill {i} at {marker!r}: {type(exc).__name__}: {exc}")
            KILLS.failed["train"] = KILLS.failed.get("train", 0) + 1
        else:
            KILLS.kills["train"] = KILLS.kills.get("train", 0) + 1
    assert not failures, "\n".join(failures)
    # the re-run continues the interrupted second stage and finishes the recipe
    done = subprocess.run([sys.executable, str(TRAIN_CHILD), "none", "train", "recipe", str(recipe), "--quiet"],
                          env=child_env(home), capture_output=True, text=True, timeout=300)
    KILLS.seconds["train"] = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"[2/2] sft -> {sft2}: resuming interrupted run" in done.stderr
    assert f"[1/2] sft -> {sft}: profile exists, skipped" in done.stderr
    saves = [ln for ln in done.stdout.splitlines() if ln.startswith(f"at save {sft2} ")]
    assert saves == [f"at save {sft2} 2", f"at save {sft2} 3"], f"not resumed from step 1: {saves}"
    _check([sft, sft2])
    store = ProfileStore()
    assert store.get(sft2).chain == [sft, sft2] and store.get(sft2).metrics["steps"] == 3
    assert all(store.get(n).recipe == recipe.stem for n in STAGES)
    assert "resuming interrupted run" in log.read_text(), "no killed stage was resumed from its checkpoint"
