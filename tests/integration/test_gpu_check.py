"""benchmarks/gpu_check.sh (issue 14 item 8): --smoke runs every step of the GPU check on CPU with tiny
shapes, records each step's result or skip reason in one JSON summary and exits 0; a failing step is
recorded and makes the exit status non-zero."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = {"qlora_7b", "covid_recipe", "decode", "ddp"}


def _run(tmp_path, *args, timeout=900):
    env = {**os.environ, "MEDCHAT_PY": sys.executable, "OMP_NUM_THREADS": "2"}
    out = tmp_path / "gpu.json"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--smoke", "--out", str(out),
                           "--work", str(tmp_path / "work"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    return proc, json.loads(out.read_text()) if out.exists() else None


@pytest.mark.slow
def test_smoke_records_every_step_and_exits_zero(tmp_path):
    proc, summary = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary is not None and json.loads(proc.stdout) == summary
    assert set(summary["steps"]) == STEPS and summary["failed"] == [] and summary["smoke"] is True
    for name, res in summary["steps"].items():
        assert "error" not in res, (name, res)
        assert "skipped" in res or len(res) > 3, (name, res)  # a result, or the reason it did not run
    steps = summary["steps"]
    assert steps["qlora_7b"]["tokens_per_s"] > 0 and steps["qlora_7b"]["steps"] == 3
    assert "peak_vram_gib" in steps["qlora_7b"]
    assert set(steps["covid_recipe"]["stages"]) == {"covid-sft", "covid-rm", "covid-ppo"}
    assert steps["decode"]["tok_s"] > 0 and steps["decode"]["profile"].startswith("gpu-lora")
    if len(summary["machine"]["gpus"]) < 2:
        assert steps["ddp"]["skipped"].endswith(("GPU", "GPUs"))
    assert not (tmp_path / "work" / "llama-7b-shape").exists()  # the random checkpoint is removed


def test_a_failing_step_is_recorded_and_the_exit_status_is_nonzero(tmp_path):
    proc, summary = _run(tmp_path, "--only", "decode,ddp", "--step-timeout", "1", timeout=300)
    assert proc.returncode == 1
    assert summary["failed"] == ["decode"] and "timed out" in summary["steps"]["decode"]["error"]
    assert "skipped" in summary["steps"]["ddp"] or "error" not in summary["steps"]["ddp"]  # the next step still ran
