"""Profile manifests, adapter dirs and config.toml: success or one UserError line, nothing half-written."""

from __future__ import annotations

import json

import tomli_w
from hypothesis import given
from hypothesis import strategies as st
from tests.adversarial.strategies import any_text, as_bytes, clean, fast, json_values, leftovers, mixed_text, scratch, tally

from medchat.core.config import AppConfig
from medchat.core.profiles import ADAPTER_WEIGHTS, Profile, ProfileStore, check_adapter_dir

FIELDS = ["name", "base", "kind", "chain", "stage", "method", "datasets", "recipe", "metrics", "created",
          "chat_template", "system_prompt", "generation", "kb", "description", "allow_pickle"]
toml_scalars = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False), any_text)
toml_values = st.recursive(toml_scalars, lambda kids: st.lists(kids, max_size=3)
                           | st.dictionaries(st.text(max_size=8), kids, max_size=3), max_leaves=8)
toml_lines = st.sampled_from(['name = "p"', "chain = [", "[generation]", "[[datasets]]", "kind = 'reward'", "= 3",
                              'x = """', "a.b.c = 1", "\ufeff", "name = 'other'"])
manifest_text = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), toml_values, max_size=6).map(tomli_w.dumps),
    st.lists(toml_lines | any_text, max_size=8).map("\n".join))


@fast(60)
@given(raw=as_bytes(manifest_text))
def test_random_profile_manifest(raw):
    tally("profiles")
    with scratch() as d:
        store = ProfileStore(d)
        (d / "p").mkdir()
        (d / "p" / "profile.toml").write_bytes(raw)
        for call in (lambda: store.get("p"), store.list, lambda: store.children("p"),
                     lambda: store.chain_dirs(store.get("p"))):
            got = clean(call)
            if isinstance(got, Profile):  # a manifest that loads must be usable as a Profile
                assert isinstance(got.name, str) and isinstance(got.chain, list)


adapter_cfg = st.one_of(
    st.fixed_dictionaries({"peft_type": st.sampled_from(["LORA", "lora", "IA3", None, 3]) | mixed_text},
                          optional={"r": json_values, "target_modules": json_values, "base_model_name_or_path": json_values}),
    json_values)


@fast(50)
@given(cfg=st.one_of(adapter_cfg.map(lambda c: json.dumps(c).encode()), as_bytes(mixed_text), st.none()),
       weights=st.one_of(st.none(), st.binary(max_size=64),
                         st.builds(lambda n, b: n.to_bytes(8, "little") + b, st.integers(0, 2**64 - 1), st.binary(max_size=64))),
       pickled=st.booleans(), allow_pickle=st.booleans())
def test_garbage_adapter_dir_is_refused_cleanly_and_install_leaves_nothing(cfg, weights, pickled, allow_pickle):
    tally("adapters")
    with scratch() as d:
        adapter = d / "adapter"
        adapter.mkdir()
        if cfg is not None:
            (adapter / "adapter_config.json").write_bytes(cfg)
        if weights is not None:
            (adapter / ADAPTER_WEIGHTS).write_bytes(weights)
        if pickled:
            (adapter / "adapter_model.bin").write_bytes(b"\x80\x04garbage")
        clean(check_adapter_dir, adapter, allow_pickle=allow_pickle)
        store = ProfileStore(d / "profiles")
        got = clean(store.install, Profile(name="imported", allow_pickle=allow_pickle), adapter)
        assert not leftovers(d / "profiles")
        if isinstance(got, Exception):
            assert not (d / "profiles" / "imported").exists()


@fast(30)
@given(name=st.one_of(any_text, st.sampled_from(["", ".", "..", "base", "a/b", "../x", "A", "x" * 65, "ok-name"])))
def test_any_profile_name(name):
    tally("profiles")
    with scratch() as d:
        store = ProfileStore(d)
        clean(store.get, name)
        clean(store.adapter_dir, name)
        clean(store.remove, name)
        assert not leftovers(d)


config_doc = st.dictionaries(st.sampled_from(["safety", "chat", "other"]) | st.text(max_size=6),
                             st.dictionaries(st.sampled_from(["region", "emergency_number", "key_facts"])
                                             | st.text(max_size=6), toml_values, max_size=3) | toml_values,
                             max_size=3)


@fast(60)
@given(raw=st.one_of(config_doc.map(lambda d: tomli_w.dumps(d).encode()),
                     st.fixed_dictionaries({"safety": st.fixed_dictionaries(
                         {"region": st.sampled_from(["UK", "US", "auto", "uk", "EU", "", "zz"]) | any_text},
                         optional={"emergency_number": any_text})}).map(lambda d: tomli_w.dumps(d).encode()),
                     as_bytes(st.lists(toml_lines | any_text, max_size=6).map("\n".join))))
def test_random_config_toml(raw):
    tally("config")
    with scratch() as d:
        path = d / "config.toml"
        path.write_bytes(raw)
        got = clean(AppConfig.load, path)
        if isinstance(got, AppConfig):
            assert isinstance(got.key_facts, bool) and isinstance(got.region, str)
