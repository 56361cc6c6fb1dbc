"""Normal use prints nothing on stderr but medchat's own lines; `--verbose` lets the libraries speak."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _medchat(*argv, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MEDCHAT_VERBOSE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")}
    env.update(MEDCHAT_HOME=str(home), PYTHONPATH=str(ROOT), PYTHONWARNINGS="")
    return subprocess.run([sys.executable, "-m", "medchat", *map(str, argv)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _foreign(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("medchat:")]


def test_kb_list_is_quiet(tmp_path):
    run = _medchat("kb", "list", home=tmp_path)
    assert run.returncode == 0 and "default" in run.stdout
    assert _foreign(run.stderr) == [], run.stderr


@pytest.mark.slow
def test_ask_is_quiet_and_verbose_shows_library_output(tmp_path, tiny_model_dir):
    ask = ["ask", "hi", "--base", tiny_model_dir, "--no-kb", "--max-new-tokens", "4"]
    run = _medchat(*ask, home=tmp_path)
    assert run.returncode == 0 and run.stdout.strip(), run.stderr
    assert _foreign(run.stderr) == [], run.stderr

    # on CPU the dynamic-int8 mode creates quantized tensors; torch warns that this API is
    # deprecated, and --verbose must let that warning through
    loud = _medchat("--verbose", *ask, "--device", "cpu", "--decode-mode", "dynamic-int8", home=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert "quantize_per" in loud.stderr, loud.stderr


@pytest.mark.slow
def test_the_transformers_path_is_quiet_too(medchat_home, tiny_model_dir, lora_a):
    """--no-fast decodes through transformers + peft: no deprecation warning about how the KV cache is
    passed (transformers 5.24 renamed past_key_values to cache), with and without an adapter."""
    from medchat.core.models import fingerprint
    from medchat.core.profiles import Profile, ProfileStore

    ProfileStore().install(Profile(name="qa", base_fingerprint=fingerprint(tiny_model_dir)), lora_a)
    ask = ["ask", "hi", "--base", tiny_model_dir, "--no-kb", "--max-new-tokens", "4", "--no-fast"]
    for extra in ([], ["--profile", "qa"]):
        run = _medchat(*ask, *extra, home=medchat_home)
        assert run.returncode == 0 and run.stdout.strip(), run.stderr
        assert _foreign(run.stderr) == [], run.stderr


@pytest.mark.slow
def test_train_is_quiet(tmp_path, tiny_model_dir):
    """A training run: our progress lines only (peft's deprecation warnings and the weight-loading
    bars stay hidden)."""
    data = tmp_path / "d.json"
    data.write_text('[{"instruction": "What helps a fever?", "input": "", "output": "Drink fluids and rest."}]')
    run = _medchat("train", "--stage", "sft", "--base", tiny_model_dir, "--dataset", data, "--name", "q",
                   "--max-steps", "1", "--val-size", "0", "--lora-r", "2", home=tmp_path / "home")
    assert run.returncode == 0, run.stderr
    assert "sft q" in run.stderr  # our own progress stays
    library = re.compile(r"Warning|warnings\.warn|Loading weights|it/s\]|Failed to load")
    assert [ln for ln in run.stderr.splitlines() if library.search(ln)] == [], run.stderr
