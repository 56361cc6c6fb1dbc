"""Shared fixtures. MEDCHAT_HOME always points at a temp dir; models are tiny and random."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.support.fixtures_models import build_tiny_llama, make_lora_adapter  # noqa: E402


@pytest.fixture(autouse=True)
def medchat_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "medchat-home"
    monkeypatch.setenv("MEDCHAT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory) -> Path:
    """A second tiny base with another shape: profiles made for it must be refused on tiny_model_dir."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-b"), seed=5, hidden=32)


@pytest.fixture(scope="session")
def lora_a(tiny_model_dir, tmp_path_factory) -> Path:
    return make_lora_adapter(tiny_model_dir, tmp_path_factory.mktemp("lora-a"), seed=1)


@pytest.fixture(scope="session")
def lora_b(tiny_model_dir, tmp_path_factory) -> Path:
    return make_lora_adapter(tiny_model_dir, tmp_path_factory.mktemp("lora-b"), seed=2)


def embedded_available() -> bool:
    from medchat.core.models import embedded_gguf

    return embedded_gguf() is not None


@pytest.fixture
def hogs(monkeypatch):
    """Every competing-load process the code under test starts, to check on it afterwards."""
    started = []
    from medchat.app import bench_load

    real = bench_load.competing_load

    @contextmanager
    def spy(threads=None, own_session=True):
        with real(threads, own_session) as proc:
            proc.own_session = own_session
            started.append(proc)
            yield proc

    monkeypatch.setattr(bench_load, "competing_load", spy)
    return started
