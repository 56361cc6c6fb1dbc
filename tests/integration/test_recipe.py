"""Recipes: the shipped covid pipeline plans correctly; a tiny sft -> rm -> ppo recipe runs end to end."""

import json

import pytest
import yaml

from medchat.core.errors import UserError
from medchat.core.profiles import ProfileStore
from test_ppo_helpers import GOOD, QUESTIONS, write_pairs
from trainer import recipes


def test_covid_recipe_plans_sft_rm_ppo_from_the_embedded_base():
    cfgs, control = recipes.plan(recipes.load_recipe(recipes.find("covid")), {})
    assert [(c.stage, c.name) for c in cfgs] == [("sft", "covid-sft"), ("rm", "covid-rm"), ("ppo", "covid-ppo")]
    sft, rm, ppo = cfgs
    assert all(c.model.base == "smollm2-135m" for c in cfgs)
    assert sft.data.datasets == ["covid_sft"] and rm.data.datasets == ["covid_pairs"]
    assert rm.model.from_profile == "covid-sft" and ppo.model.from_profile == "covid-sft"
    assert ppo.reward.reward == "covid-rm" and ppo.ppo.steps >= 1 and control == {}
    assert rm.lora.r == 8 and ppo.lora.target_modules == "all-linear"


def test_overrides_are_scoped_by_stage_or_profile_name_and_renames_follow():
    recipe = recipes.load_recipe(recipes.find("covid"))
    cfgs, control = recipes.plan(recipe, {"ppo.steps": 3, "rm.training.max_steps": 2, "covid-ppo.kl_coef": 0.2,
                                          "learning_rate": 1e-4, "sft.name": "my-sft", "force": "true"})
    sft, rm, ppo = cfgs
    assert ppo.ppo.steps == 3 and ppo.ppo.kl_coef == 0.2 and rm.training.max_steps == 2
    assert sft.training.max_steps != 2 and sft.ppo.kl_coef != 0.2
    assert all(c.training.learning_rate == 1e-4 for c in cfgs)
    assert sft.name == "my-sft" and rm.model.from_profile == "my-sft" and ppo.model.from_profile == "my-sft"
    assert control == {"force": "true"}
    with pytest.raises(UserError, match="scope it"):
        recipes.plan(recipe, {"name": "x"})
    with pytest.raises(UserError, match="unknown training option"):
        recipes.plan(recipe, {"ppo.no_such_option": 1})
    with pytest.raises(UserError, match="unknown recipe"):
        recipes.find("no-such-recipe")


def _tiny_recipe(tmp_path, tiny_model_dir):
    train, val = write_pairs(tmp_path / "data")
    sft = tmp_path / "data" / "sft.json"
    sft.write_text(json.dumps([{"instruction": q, "input": "", "output": GOOD} for q in QUESTIONS[:8]]))
    recipe = {
        "defaults": {"base": str(tiny_model_dir), "lora": {"r": 4, "dropout": 0.0}, "cutoff_len": 128,
                     "batch_size": 4, "logging_steps": 1, "save_steps": 100, "warmup_ratio": 0.0},
        "stages": [
            {"stage": "sft", "name": "t-sft", "dataset": str(sft), "val_size": 0,
             "max_steps": 2},
            {"stage": "rm", "name": "t-rm", "from": "t-sft", "dataset": str(train), "val_dataset": str(val),
             "max_steps": 2},
            {"stage": "ppo", "name": "t-ppo", "from": "t-sft", "reward": "t-rm", "dataset": str(train),
             "ppo": {"steps": 1, "rollout_batch_size": 2, "mini_batch_size": 2, "ppo_epochs": 1,
                     "max_new_tokens": 4}},
        ],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_tiny_recipe_runs_end_to_end_via_the_cli_then_skips_and_forces(tmp_path, tiny_model_dir, capsys):
    from medchat.app.cli import main

    path = _tiny_recipe(tmp_path, tiny_model_dir)
    assert main(["train", "recipe", str(path), "--quiet", "--set", "rm.learning_rate=1e-3"]) == 0
    store = ProfileStore()
    sft, rm, ppo = (store.get(n) for n in ("t-sft", "t-rm", "t-ppo"))
    assert (sft.stage, rm.stage, ppo.stage) == ("sft", "rm", "ppo")
    assert rm.kind == "reward" and rm.chain == ["t-sft", "t-rm"] and ppo.chain == ["t-sft", "t-ppo"]
    assert "installed t-sft, t-rm, t-ppo" in capsys.readouterr().out
    # the result chats through the normal CLI
    assert main(["ask", "--base", str(tiny_model_dir), "--profile", "t-ppo", "--no-kb", "--max-new-tokens", "3",
                 "--seed", "1", "hello"]) == 0
    # a second run skips installed stages; force retrains them
    created = store.get("t-ppo").created
    profiles = recipes.run(str(path), {}, quiet=True)
    assert [p.name for p in profiles] == ["t-sft", "t-rm", "t-ppo"] and store.get("t-ppo").created == created
    assert "skipped" in capsys.readouterr().err
    recipes.run(str(path), {"force": "true", "sft.max_steps": 1}, quiet=True)
    assert store.get("t-sft").metrics["steps"] == 1
