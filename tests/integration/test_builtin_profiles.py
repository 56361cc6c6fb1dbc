"""Shipped profiles (medchat/app/profiles_builtin/): installed once on first run, atomically, only for the
base they were made for; chat/ask default to `doctor` when it is installed."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from medchat.app import builtin_profiles as bp
from medchat.core.models import fingerprint
from medchat.core.profiles import Profile, ProfileStore

REPO = Path(__file__).resolve().parents[2]


def _ship(root: Path, adapter: Path, fp: str, name: str = "doctor", created: str = "2026-11-01T00:00:00+00:00") -> Path:
    """A folder as `medchat profiles export` writes it, weights stored in 16-bit."""
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(adapter, folder)
    st = folder / "adapter_model.safetensors"
    save_file({k: v.to(torch.float16) for k, v in load_file(str(st)).items()}, str(st))
    prof = Profile(name=name, base="tiny", base_fingerprint=fp, stage="sft", method="lora", created=created,
                   datasets=[{"name": "doctor_sft", "sha256": "0" * 64, "rows": 1}], chain=[name])
    (folder / bp.MANIFEST).write_text(prof.to_toml())
    return folder


def test_installs_once_and_a_removed_profile_stays_removed(tiny_model_dir, lora_a, tmp_path):
    ship = tmp_path / "builtin"
    _ship(ship, lora_a, fingerprint(tiny_model_dir))
    store = ProfileStore()
    assert bp.install_builtin(store, tiny_model_dir, ship) == ["doctor"]
    prof = store.get("doctor")
    assert prof.chain == ["doctor"] and prof.datasets[0]["name"] == "doctor_sft"
    assert (store.adapter_dir("doctor") / "adapter_model.safetensors").exists()
    assert not list(store.root.glob(".staging-*"))  # installed through the store's atomic rename
    assert bp.install_builtin(store, tiny_model_dir, ship) == []  # second start: nothing to do
    store.remove("doctor")
    assert bp.install_builtin(store, tiny_model_dir, ship) == [] and not store.exists("doctor")


def test_not_installed_for_another_base_nor_over_a_users_profile(tiny_model_dir, other_model_dir, lora_a, lora_b,
                                                                 tmp_path):
    ship = tmp_path / "builtin"
    _ship(ship, lora_a, fingerprint(tiny_model_dir))
    store = ProfileStore()
    assert bp.install_builtin(store, other_model_dir, ship) == [] and not store.exists("doctor")
    store.install(Profile(name="doctor", base_fingerprint=fingerprint(tiny_model_dir), description="mine"), lora_b)
    assert bp.install_builtin(store, tiny_model_dir, ship) == []
    assert store.get("doctor").description == "mine"


def _weights(store, name):
    return load_file(str(store.adapter_dir(name) / "adapter_model.safetensors"))


def test_a_newer_shipped_version_replaces_the_untouched_earlier_one(tiny_model_dir, lora_a, lora_b, tmp_path):
    ship, fp = tmp_path / "builtin", fingerprint(tiny_model_dir)
    _ship(ship, lora_a, fp, created="2026-11-01T00:00:00+00:00")
    store = ProfileStore()
    assert bp.install_builtin(store, tiny_model_dir, ship) == ["doctor"]
    _ship(ship, lora_b, fp, created="2026-12-01T00:00:00+00:00")  # the next medchat release
    assert bp.install_builtin(store, tiny_model_dir, ship) == ["doctor"]
    assert store.get("doctor").created == "2026-12-01T00:00:00+00:00"
    new = load_file(str(ship / "doctor" / "adapter_model.safetensors"))
    assert all(torch.equal(_weights(store, "doctor")[k], v) for k, v in new.items())
    assert bp.install_builtin(store, tiny_model_dir, ship) == []  # up to date: nothing to do
    assert not list(store.root.glob(".staging-*")) and not list(store.root.glob(".old-*"))


def test_an_upgrade_never_replaces_the_users_own_doctor_nor_brings_back_a_removed_one(
        tiny_model_dir, lora_a, lora_b, tmp_path):
    ship, fp = tmp_path / "builtin", fingerprint(tiny_model_dir)
    _ship(ship, lora_a, fp, created="2026-11-01T00:00:00+00:00")
    store = ProfileStore()
    bp.install_builtin(store, tiny_model_dir, ship)
    store.install(Profile(name="doctor", base_fingerprint=fp, description="mine"), lora_b, overwrite=True)
    _ship(ship, lora_a, fp, created="2026-12-01T00:00:00+00:00")
    assert bp.install_builtin(store, tiny_model_dir, ship) == [] and store.get("doctor").description == "mine"
    store.remove("doctor")
    assert bp.install_builtin(store, tiny_model_dir, ship) == [] and not store.exists("doctor")


def test_a_marker_from_before_stamps_upgrades_only_a_known_earlier_release(tiny_model_dir, lora_a, lora_b,
                                                                           tmp_path, monkeypatch):
    ship, fp = tmp_path / "builtin", fingerprint(tiny_model_dir)
    store = ProfileStore()
    monkeypatch.setitem(bp.EARLIER_RELEASES, "doctor", ("2026-11-01T00:00:00+00:00",))
    for created, upgraded in (("2026-11-01T00:00:00+00:00", True), ("2026-11-15T00:00:00+00:00", False)):
        store.install(Profile(name="doctor", base_fingerprint=fp, created=created), lora_a, overwrite=True)
        bp._marker_path().write_text(json.dumps({"doctor": fp}))  # the old marker: a fingerprint only
        _ship(ship, lora_b, fp, created="2026-12-01T00:00:00+00:00")
        assert (bp.install_builtin(store, tiny_model_dir, ship) == ["doctor"]) is upgraded
        assert store.get("doctor").created == ("2026-12-01T00:00:00+00:00" if upgraded else created)


def test_a_failed_install_leaves_no_profile_and_is_retried(tiny_model_dir, lora_a, tmp_path, monkeypatch):
    ship = tmp_path / "builtin"
    _ship(ship, lora_a, fingerprint(tiny_model_dir))
    store = ProfileStore()

    def boom(*a, **k):
        raise OSError("disk full")

    copytree = shutil.copytree
    monkeypatch.setattr(shutil, "copytree", boom)
    with pytest.raises(OSError):
        bp.install_builtin(store, tiny_model_dir, ship)
    assert not store.exists("doctor") and not bp.installed_before()
    # not monkeypatch.undo(): that would also undo the test's temporary MEDCHAT_HOME
    monkeypatch.setattr(shutil, "copytree", copytree)
    assert bp.install_builtin(ProfileStore(), tiny_model_dir, ship) == ["doctor"]


def _args(**kw):
    base = dict(profile=None, base=None, device="cpu", dtype=None, load_in_4bit=False, load_in_8bit=False,
                trust_remote_code=False, no_fast=False)
    return argparse.Namespace(**{**base, **kw})


def test_chat_and_ask_default_to_the_shipped_doctor(tiny_model_dir, lora_a, tmp_path, monkeypatch):
    from medchat.app.cli.common import make_engine

    ship = tmp_path / "builtin"
    _ship(ship, lora_a, fingerprint(tiny_model_dir))
    monkeypatch.setattr(bp, "BUILTIN_DIR", ship)
    engine = make_engine(_args(base=str(tiny_model_dir)))
    assert engine.profile.name == "doctor" and ProfileStore().exists("doctor")
    assert make_engine(_args(base=str(tiny_model_dir), profile="base")).profile.name == "base"
    assert engine.use("base").name == "base"  # /use base
    assert bp.default_profile(ProfileStore(), "another-base") is None


def test_an_eval_before_the_first_chat_installs_the_shipped_profile_it_names(tiny_model_dir, lora_a, tmp_path,
                                                                              monkeypatch):
    """`medchat eval grounded --profiles doctor` on a fresh home: the doctor it names is installed, not
    reported as unknown; a name nothing ships stays an error naming the installed profiles."""
    from medchat.app.evaluation.runner import check_profiles
    from medchat.core.errors import UserError

    ship = tmp_path / "builtin"
    _ship(ship, lora_a, fingerprint(tiny_model_dir))
    monkeypatch.setattr(bp, "BUILTIN_DIR", ship)
    store = ProfileStore()
    assert not store.exists("doctor")
    assert [p.name for p in check_profiles(store, ["base", "doctor"], base=str(tiny_model_dir))] == ["base", "doctor"]
    with pytest.raises(UserError, match="unknown profile 'nurse'.*doctor"):
        check_profiles(store, ["nurse"], base=str(tiny_model_dir))


def test_the_configured_profile_replaces_the_default_and_the_flag_wins(tiny_model_dir, lora_a, tmp_path, monkeypatch,
                                                                       medchat_home):
    from medchat.app.cli.common import make_engine

    ship = tmp_path / "builtin"
    _ship(ship, lora_a, fingerprint(tiny_model_dir))
    monkeypatch.setattr(bp, "BUILTIN_DIR", ship)
    monkeypatch.delenv("MEDCHAT_PROFILE", raising=False)
    medchat_home.mkdir(parents=True, exist_ok=True)
    (medchat_home / "config.toml").write_text('[chat]\nprofile = "base"\n')
    assert make_engine(_args(base=str(tiny_model_dir))).profile.name == "base"
    assert make_engine(_args(base=str(tiny_model_dir), profile="doctor")).profile.name == "doctor"
    monkeypatch.setenv("MEDCHAT_PROFILE", "doctor")
    assert make_engine(_args(base=str(tiny_model_dir))).profile.name == "doctor"


SHIPPED = REPO / "medchat" / "app" / "profiles_builtin" / "doctor"


@pytest.mark.skipif(not (SHIPPED / bp.MANIFEST).exists(),
                    reason="no shipped doctor profile yet (medchat/app/profiles_builtin/doctor/ is added after training)")
def test_shipped_doctor_names_its_recipe_and_the_data_it_was_trained_on():
    from trainer.data.loaders import sha256_files

    prof = bp.read_manifest(SHIPPED)
    assert prof.recipe == "doctor"
    info = json.loads((REPO / "trainer" / "samples" / "dataset_info.json").read_text())
    by_name = {d["name"]: d for d in prof.datasets}
    assert "doctor_sft" in by_name
    for name, d in by_name.items():
        files = [REPO / "trainer" / "samples" / info[name]["file_name"]]
        assert d["sha256"] == sha256_files(files), f"{name} changed since the shipped doctor was trained"
    weights = load_file(str(SHIPPED / "adapter_model.safetensors"))
    assert all(t.dtype in (torch.float16, torch.bfloat16) for t in weights.values())
    from trainer import recipes  # chat samples with it as the recipe says (greedy: what eval grounded measures)

    stages, _ = recipes.plan(recipes.load_recipe(recipes.find("doctor")), {})
    assert prof.generation == {"temperature": stages[0].chat.temperature} == {"temperature": 0.0}
