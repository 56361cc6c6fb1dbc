"""The shipped sample data stays valid and in sync with its sources."""

import importlib.util
from pathlib import Path

import trainer

SAMPLES = Path(trainer.__file__).parent / "samples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, SAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sample_data_validates():
    assert _load("validate_samples").main() == 0
