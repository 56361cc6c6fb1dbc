"""A hub-id base resolved from the local Hugging Face cache records its snapshot commit in the manifest."""

import json
import shutil

import pytest

from medchat.core.models import hub_revision, resolve_base
from medchat.core.profiles import ProfileStore
from trainer.config import load_config
from trainer.stages import run_stage

REPO = "medchat-test/tiny-llama"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, tiny_model_dir, monkeypatch):
    """The cache layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<sha>/...}."""
    import huggingface_hub.constants as hf

    cache = tmp_path / "hf-cache"
    repo = cache / ("models--" + REPO.replace("/", "--"))
    shutil.copytree(tiny_model_dir, repo / "snapshots" / SHA)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    for key, value in {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(key, value)
    # huggingface_hub reads its env once at import: point the already-imported constants there too
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    return cache


def test_a_hub_base_records_its_resolved_snapshot_commit(tmp_path, hub_cache):
    assert resolve_base(REPO).name == SHA  # offline: resolved from the cache, not the network
    data = tmp_path / "sft.json"
    data.write_text(json.dumps([{"instruction": "What helps a fever?", "input": "", "output": "Rest."}] * 4))
    cfg = load_config({"stage": "sft", "name": "hub-sft", "model": {"base": REPO},
                       "data": {"datasets": [str(data)], "val_size": 0}, "lora": {"r": 4},
                       "training": {"max_steps": 1, "save_steps": 100, "logging_steps": 1}})
    run_stage(cfg, quiet=True)
    prof = ProfileStore().get("hub-sft")
    assert (prof.base, prof.base_revision) == (REPO, SHA)


def test_local_dirs_and_the_embedded_base_record_no_revision(tiny_model_dir, hub_cache):
    assert hub_revision(str(tiny_model_dir), tiny_model_dir) == ""
    snapshot = hub_cache / ("models--" + REPO.replace("/", "--")) / "snapshots" / SHA
    assert hub_revision(str(snapshot), snapshot) == ""  # a cache folder given as a path is a local dir
    assert hub_revision("smollm2-135m", snapshot) == ""
    assert hub_revision(REPO, snapshot) == SHA


def test_a_locally_trained_profile_has_an_empty_revision_and_old_manifests_still_load(tmp_path, tiny_model_dir):
    from medchat.core.profiles import Profile

    old = Profile(name="x", base=str(tiny_model_dir)).to_toml().replace('base_revision = ""\n', "")
    assert "base_revision" not in old and Profile.from_toml(old).base_revision == ""
