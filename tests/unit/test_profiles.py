"""The profile store: names, manifests, atomic installs, stacking, remove and rename."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from medchat.core import profiles as profiles_mod
from medchat.core.errors import UserError
from medchat.core.profiles import BASE_PROFILE, Profile, ProfileStore, check_adapter_dir, validate_name

ROOT = Path(__file__).resolve().parents[2]


def fake_adapter(path: Path, weights: str = "safetensors", extra_files: bool = False) -> Path:
    """A minimal PEFT-shaped LoRA dir (the store checks files, not shapes)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4}))
    tensors = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": np.ones((2, 8), np.float32),
               "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": np.zeros((8, 2), np.float32)}
    if weights == "safetensors":
        save_file(tensors, str(path / "adapter_model.safetensors"))
    elif weights == "bin":
        (path / "adapter_model.bin").write_bytes(b"pickled")
    if extra_files:
        (path / "README.md").write_text("model card")
        (path / "optimizer.pt").write_bytes(b"x" * 10)
        for i in range(5):
            (path / f"notes{i}.txt").write_text("n")
    return path


@pytest.fixture
def store(medchat_home):
    return ProfileStore()


@pytest.fixture
def adapter(tmp_path):
    return fake_adapter(tmp_path / "adapter")


def install(store, name, adapter, chain=(), **kw):
    return store.install(Profile(name=name, chain=list(chain), stage="sft", method="lora", **kw), adapter)


# --- names -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["covid-sft", "a", "x1.2_b-c", "9lives", "a" * 64])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["../x", "..", ".", "Base", "", "a" * 65, "a/b", ".hidden", "-x",
                                  "has space", "evil\n", "x\\y", "café"])
def test_invalid_names_are_one_clear_line(name):
    with pytest.raises(UserError, match="invalid profile name") as exc:
        validate_name(name)
    assert "\n" not in str(exc.value).replace(name, "")  # (the echoed name aside)


@pytest.mark.parametrize("name", ["../escaped", "..", "a/../../b", "evil\n"])
def test_names_cannot_escape_the_store(store, adapter, medchat_home, name):
    before = sorted(p for p in medchat_home.rglob("*"))
    with pytest.raises(UserError):
        install(store, name, adapter)
    with pytest.raises(UserError):
        store.get(name)
    with pytest.raises(UserError):
        store.adapter_dir(name)
    assert sorted(p for p in medchat_home.rglob("*")) == before
    assert not (store.root.parent / "escaped").exists()


def test_base_is_builtin_and_cannot_be_installed_removed_or_renamed(store, adapter):
    assert store.names() == [BASE_PROFILE] and store.get("base").is_base
    with pytest.raises(UserError, match="built-in"):
        install(store, "base", adapter)
    with pytest.raises(UserError, match="cannot be removed"):
        store.remove("base")
    with pytest.raises(UserError, match="cannot be renamed"):
        store.rename("base", "other")


# --- install and read --------------------------------------------------------------------
def test_install_round_trips_the_manifest_and_copies_the_adapter(store, tmp_path):
    src = fake_adapter(tmp_path / "src", extra_files=True)
    p = install(store, "covid-sft", src, base="/models/tiny", base_fingerprint="abc",
                datasets=[{"name": "covid-qa", "sha256": "00", "rows": 12}], generation={"temperature": 0.2})
    assert p.chain == ["covid-sft"] and p.created and p.path == store.root / "covid-sft"
    got = ProfileStore().get("covid-sft")
    assert (got.base, got.base_fingerprint, got.chain, got.generation) == ("/models/tiny", "abc", ["covid-sft"],
                                                                          {"temperature": 0.2})
    assert got.datasets[0]["rows"] == 12
    copied = store.adapter_dir("covid-sft")
    assert (copied / "adapter_model.safetensors").read_bytes() == (src / "adapter_model.safetensors").read_bytes()
    assert not (copied / "README.md").exists() and not (copied / "optimizer.pt").exists()
    assert store.names() == ["base", "covid-sft"]


def test_install_refuses_to_overwrite_unless_asked(store, adapter):
    install(store, "a", adapter, description="first")
    with pytest.raises(UserError, match="already exists"):
        install(store, "a", adapter, description="second")
    assert store.get("a").description == "first"
    store.install(Profile(name="a", description="second"), adapter, overwrite=True)
    assert store.get("a").description == "second"


def test_chain_lists_parents_first_and_children_are_found(store, adapter):
    install(store, "a", adapter)
    ab = install(store, "ab", adapter, chain=["a"])
    assert ab.chain == ["a", "ab"]
    assert [n for n, _ in store.chain_dirs(ab)] == ["a", "ab"]
    assert store.chain_dirs(ab)[0][1] == store.adapter_dir("a")
    assert store.children("a") == ["ab"] and store.children("ab") == []


def test_unknown_profile_names_the_installed_ones(store, adapter):
    install(store, "covid-sft", adapter)
    with pytest.raises(UserError, match="unknown profile 'nope'; installed profiles: base, covid-sft"):
        store.get("nope")


def test_corrupt_manifest_is_a_user_error_with_the_fix(store, adapter):
    install(store, "a", adapter)
    (store.root / "a" / "profile.toml").write_text("name = [unclosed")
    with pytest.raises(UserError, match="corrupt manifest.*remove a --force"):
        store.get("a")


def test_manifest_name_must_match_its_directory(store, adapter):
    install(store, "a", adapter)
    (store.root / "a").rename(store.root / "copy")  # copied by hand: the manifest still says "a"
    with pytest.raises(UserError, match="name = 'a' but its directory is 'copy'") as exc:
        store.get("copy")
    assert "\n" not in str(exc.value)
    store.remove("copy")  # still removable
    assert store.names() == [BASE_PROFILE]


def test_manifest_ignores_unknown_keys():
    p = Profile.from_toml('name = "x"\nkind = "chat"\nfuture_field = 3\n')
    assert p.name == "x" and p.kind == "chat"


def test_update_rewrites_the_manifest(store, adapter):
    p = install(store, "a", adapter)
    p.description = "tuned"
    store.update(p)
    assert store.get("a").description == "tuned"


# --- adapter checks ----------------------------------------------------------------------
def test_check_adapter_dir_accepts_a_lora_dir(adapter):
    assert check_adapter_dir(adapter)["peft_type"] == "LORA"


@pytest.mark.parametrize("breakage, needle", [
    ("no_config", "no adapter_config.json"),
    ("bad_json", "corrupt adapter_config.json"),
    ("not_lora", "only LoRA adapters"),
    ("pickle_only", "--allow-pickle"),
    ("no_weights", "has no adapter_model.safetensors"),
    ("garbage_weights", "corrupt adapter weights"),
])
def test_check_adapter_dir_refusals(tmp_path, breakage, needle):
    d = fake_adapter(tmp_path / "ad", weights={"pickle_only": "bin", "no_weights": "none"}.get(breakage,
                                                                                               "safetensors"))
    if breakage == "no_config":
        (d / "adapter_config.json").unlink()
    elif breakage == "bad_json":
        (d / "adapter_config.json").write_text("{nope")
    elif breakage == "not_lora":
        (d / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    elif breakage == "garbage_weights":
        (d / "adapter_model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match=needle) as exc:
        check_adapter_dir(d)
    assert "\n" not in str(exc.value)


def test_pickled_weights_pass_only_with_allow_pickle(store, tmp_path):
    d = fake_adapter(tmp_path / "pk", weights="bin")
    with pytest.raises(UserError, match="--allow-pickle"):
        install(store, "pk", d)
    assert "pk" not in store.names()
    install(store, "pk", d, allow_pickle=True)
    assert store.get("pk").allow_pickle and (store.adapter_dir("pk") / "adapter_model.bin").exists()


# --- atomic install ------------------------------------------------------------------------
@pytest.mark.parametrize("exc_type", [OSError, KeyboardInterrupt])
def test_install_that_fails_midway_leaves_nothing(store, tmp_path, monkeypatch, exc_type):
    src = fake_adapter(tmp_path / "src", extra_files=True)
    real_copy2 = profiles_mod.shutil.copy2
    copied = []

    def flaky_copy(a, b, *args, **kw):  # copy some files, then fail like a full disk or a Ctrl-C
        if len(copied) >= 2:
            raise exc_type("disk full")
        copied.append(a)
        return real_copy2(a, b, *args, **kw)

    real_copytree = profiles_mod.shutil.copytree
    monkeypatch.setattr(profiles_mod.shutil, "copytree",
                        lambda s, d, **kw: real_copytree(s, d, **{**kw, "copy_function": flaky_copy}))
    with pytest.raises(exc_type):
        install(store, "half", src)
    assert len(copied) == 2  # it really died midway
    assert store.names() == ["base"] and not store.exists("half")
    assert list(store.root.iterdir()) == []  # no half profile, no staging left behind


def test_install_killed_hard_midway_is_hidden_then_swept(store, tmp_path, medchat_home):
    src = fake_adapter(tmp_path / "src", extra_files=True)
    script = textwrap.dedent(f"""
        import os, shutil
        from medchat.core.profiles import Profile, ProfileStore
        real = shutil.copy2
        n = [0]
        def dying_copy(a, b, *args, **kw):
            n[0] += 1
            if n[0] > 2:
                os._exit(9)  # like SIGKILL or a power cut: no cleanup code runs
            return real(a, b, *args, **kw)
        orig = shutil.copytree
        shutil.copytree = lambda s, d, **kw: orig(s, d, **{{**kw, "copy_function": dying_copy}})
        ProfileStore().install(Profile(name="half"), {str(src)!r})
    """)
    env = {**os.environ, "MEDCHAT_HOME": str(medchat_home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    leftovers = [p.name for p in store.root.iterdir()]
    assert leftovers and all(n.startswith(".staging-half-") for n in leftovers)
    assert store.names() == ["base"] and not store.exists("half")  # the half install is never listed
    ProfileStore()  # the next start sweeps it
    assert list(store.root.iterdir()) == []


# --- remove and rename ------------------------------------------------------------------------
def test_remove_refuses_while_stacked_on_unless_forced(store, adapter):
    install(store, "a", adapter)
    install(store, "ab", adapter, chain=["a"])
    with pytest.raises(UserError, match="'a' is stacked on by ab.*--force"):
        store.remove("a")
    assert store.exists("a")
    store.remove("a", force=True)
    assert store.names() == ["base", "ab"] and not (store.root / "a").exists()
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]
    with pytest.raises(UserError, match="stacks on 'a', which was removed"):
        store.chain_dirs(store.get("ab"))


def test_remove_leaf_then_parent(store, adapter):
    install(store, "a", adapter)
    install(store, "ab", adapter, chain=["a"])
    store.remove("ab")
    store.remove("a")
    assert store.names() == ["base"]
    with pytest.raises(UserError, match="unknown profile"):
        store.remove("a")


def test_rename_moves_the_profile_and_updates_childrens_chains(store, adapter):
    install(store, "a", adapter)
    install(store, "ab", adapter, chain=["a"])
    install(store, "abc", adapter, chain=["a", "ab"])
    install(store, "other", adapter)
    renamed = store.rename("a", "a2")
    assert renamed.name == "a2" and renamed.chain == ["a2"]
    assert store.names() == ["base", "a2", "ab", "abc", "other"]
    assert store.get("ab").chain == ["a2", "ab"] and store.get("abc").chain == ["a2", "ab", "abc"]
    assert store.get("other").chain == ["other"]
    assert (store.adapter_dir("a2") / "adapter_model.safetensors").exists()
    assert [n for n, _ in store.chain_dirs(store.get("abc"))] == ["a2", "ab", "abc"]
    store.rename("ab", "ab2")  # a middle link
    assert store.get("abc").chain == ["a2", "ab2", "abc"] and store.get("ab2").chain == ["a2", "ab2"]


def test_rename_refusals(store, adapter):
    install(store, "a", adapter)
    install(store, "b", adapter)
    with pytest.raises(UserError, match="already exists"):
        store.rename("a", "b")
    with pytest.raises(UserError, match="invalid profile name"):
        store.rename("a", "../a")
    with pytest.raises(UserError, match="cannot be renamed"):
        store.rename("a", "base")
    with pytest.raises(UserError, match="unknown profile"):
        store.rename("zzz", "y")
    assert store.names() == ["base", "a", "b"]
