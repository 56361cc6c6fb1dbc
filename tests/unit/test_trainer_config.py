"""trainer.config: dataclass defaults, recipe YAML, generated CLI flags, --set and overrides."""

import argparse
import subprocess
import sys

import pytest

from medchat.core.errors import UserError
from trainer.config import (DPOArgs, PPOArgs, RewardArgs, TrainConfig, add_flags, apply_overrides, load_config,
                            overrides_from_args)


def _parse(argv):
    p = argparse.ArgumentParser()
    add_flags(p)
    return overrides_from_args(p.parse_args(argv))


def test_colleague_dataclasses_have_the_agreed_defaults():
    assert RewardArgs().reward == ""
    ppo = PPOArgs()
    assert (ppo.ppo_epochs, ppo.rollout_batch_size, ppo.mini_batch_size, ppo.max_new_tokens) == (4, 8, 4, 48)
    assert (ppo.kl_coef, ppo.adaptive_kl, ppo.target_kl, ppo.horizon, ppo.steps) == (0.05, True, 6.0, 10000, 20)
    assert (ppo.cliprange, ppo.cliprange_value, ppo.vf_coef, ppo.whiten_rewards, ppo.lam) == (0.2, 0.2, 0.1, False, 0.95)
    assert (DPOArgs().beta, DPOArgs().loss_type) == (0.1, "sigmoid")


def test_flags_are_generated_from_fields_and_typed():
    o = _parse(["--learning-rate", "1e-4", "--lora-r", "16", "--ppo-kl-coef", "0.1", "--from", "covid-sft",
                "--continue", "--dataset", "a,b", "--no-packing", "--ppo-epochs", "2", "--dpo-beta", "0.3",
                "--reward", "rm1", "--method", "qlora", "--stage", "pt", "--name", "x"])
    assert o["training.learning_rate"] == 1e-4 and o["lora.r"] == 16 and o["ppo.kl_coef"] == 0.1
    assert o["model.from_profile"] == "covid-sft" and o["model.continue_parent"] is True
    assert o["data.datasets"] == ["a", "b"] and o["data.packing"] is False and o["ppo.ppo_epochs"] == 2
    cfg = load_config(None, o)
    assert (cfg.dpo.beta, cfg.reward.reward, cfg.model.method, cfg.stage, cfg.name) == (0.3, "rm1", "qlora", "pt", "x")


def test_only_given_flags_override_and_set_works():
    assert _parse([]) == {}
    o = _parse(["--set", "lora.dropout=0", "--set", "kl_coef=0.2", "--resume"])
    cfg = load_config({"training": {"num_epochs": 1}}, o)
    assert cfg.lora.dropout == 0.0 and cfg.ppo.kl_coef == 0.2 and cfg.training.resume == "latest"
    assert cfg.training.num_epochs == 1.0 and cfg.training.learning_rate == TrainConfig().training.learning_rate


def test_recipe_yaml_nested_flat_and_llamafactory_keys(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stage: sft\nname: covid-x\nmodel:\n  base: smollm2-135m\nlearning_rate: 3.0e-4\n"
                      "lora_rank: 4\ndataset: covid_sft,covid_sharegpt\nnum_train_epochs: 2\ncutoff_len: 256\n")
    cfg = load_config(recipe, {"lora.r": 6})
    assert cfg.model.base == "smollm2-135m" and cfg.training.learning_rate == 3e-4
    assert cfg.data.datasets == ["covid_sft", "covid_sharegpt"] and cfg.training.num_epochs == 2.0
    assert cfg.lora.r == 6 and cfg.data.cutoff_len == 256  # overrides beat the recipe


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config({"name": "a", "ppo": {"steps": 3}, "data": {"packing": True, "datasets": ["x"]}})
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


@pytest.mark.parametrize("bad, needle", [
    ({"learning_rate": "fast"}, "learning_rate"),
    ({"no_such_option": 1}, "unknown training option"),
    ({"method": "full"}, "--method"),
    ({"stage": "rlhf"}, "--stage"),
    ({"continue": True}, "--continue needs --from"),
])
def test_bad_values_give_clear_errors(bad, needle):
    with pytest.raises(UserError, match=needle):
        load_config(bad).validate()


def test_apply_overrides_in_place():
    cfg = TrainConfig()
    assert apply_overrides(cfg, {"ppo_kl_coef": "0.5", "packing": "auto"}) is cfg
    assert cfg.ppo.kl_coef == 0.5 and cfg.data.packing is None
    assert not cfg.packing_enabled() and load_config({"stage": "pt"}).packing_enabled()


def test_trainer_cli_does_not_import_the_tui_or_torch():
    code = ("import sys, trainer.cli, trainer.config, trainer.runs, trainer.install, trainer.data; "
            "bad = [m for m in sys.modules if m.startswith(('textual', 'medchat.app.tui'))]; "
            "assert not bad, bad; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
