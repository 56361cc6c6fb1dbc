"""Recipe YAML (single- and multi-stage) and `--set KEY=VALUE`: success or one UserError line."""

from __future__ import annotations

import argparse

import yaml
from hypothesis import given
from hypothesis import strategies as st
from tests.adversarial.strategies import any_text, as_bytes, clean, fast, json_values, mixed_text, scratch, tally

from trainer.config import TrainConfig, key_table, load_config, overrides_from_args
from trainer.recipes import load_recipe, plan

KEYS = sorted(key_table())
option_keys = st.sampled_from(KEYS) | st.sampled_from(["lora", "training", "ppo", "model"]) | any_text
yaml_values = st.one_of(json_values, st.sampled_from(["1e-4", "yes", "no", "on", "~", "auto", "-1", "0", "inf", "nan",
                                                      "3.5", "[a, b]", "2**64"]), st.integers())
options = st.dictionaries(option_keys, yaml_values | st.dictionaries(option_keys, yaml_values, max_size=3), max_size=5)
yaml_junk = st.lists(st.sampled_from(["stages:", "- stage: sft", "  name: x", "defaults: [", "{", "&a", "*a", "!!python/object:os.system",
                                      "---", "...", "\t- x", "key: : v", "%YAML 9.9", "? complex", "<<: *a"])
                     | any_text, max_size=8).map("\n".join)


def _dump(data) -> str:
    return yaml.safe_dump(data, allow_unicode=True)


@fast(60)
@given(raw=st.one_of(options.map(_dump).map(str.encode), json_values.map(_dump).map(str.encode), as_bytes(yaml_junk)),
       overrides=st.none() | options)
def test_single_stage_recipe(raw, overrides):
    tally("recipes")
    with scratch() as d:
        path = d / "recipe.yaml"
        path.write_bytes(raw)
        cfg = clean(load_config, path, overrides)
        if isinstance(cfg, TrainConfig):
            clean(cfg.validate)
            assert isinstance(cfg.to_yaml(), str)


stage = st.fixed_dictionaries({}, optional={"stage": st.sampled_from(["sft", "rm", "ppo", "dpo", "pt"]) | mixed_text,
                                            "name": st.sampled_from(["a-sft", "a-rm", "x"]) | json_values}).flatmap(
    lambda base: options.map(lambda extra: {**extra, **base}))
stages = st.lists(stage, min_size=1, max_size=3) | st.lists(stage | json_values, max_size=3)
recipe = st.fixed_dictionaries({"stages": stages}, optional={"defaults": options | json_values,
                                                             "description": json_values})


@fast(100)
@given(raw=st.one_of(recipe.map(_dump).map(str.encode), as_bytes(yaml_junk)), overrides=st.none() | options)
def test_multi_stage_recipe(raw, overrides):
    tally("recipes")
    with scratch() as d:
        path = d / "recipe.yaml"
        path.write_bytes(raw)
        loaded = clean(load_recipe, path)
        if isinstance(loaded, dict):
            clean(plan, loaded, overrides)


set_items = st.one_of(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS) | any_text,
                                st.sampled_from(["", "1", "-1", "1e309", "nan", "true", "maybe", "a,b,,c", "0x10",
                                                 "1_000", "None", "٣", "１２"]) | any_text),
                      any_text)


@fast(80)
@given(items=st.lists(set_items, max_size=4), scoped_ok=st.booleans())
def test_set_values(items, scoped_ok):
    tally("--set")
    got = clean(overrides_from_args, argparse.Namespace(cfg_set=items), scoped_ok=scoped_ok)
    if isinstance(got, dict) and not scoped_ok:
        cfg = clean(load_config, None, got)
        if isinstance(cfg, TrainConfig):
            clean(cfg.validate)
