"""The stage registry is the one list of stage names: config validation, `medchat data check --stage`
and the pairwise-data check read it, and every entry names a module with run()."""

import argparse
import importlib

import pytest

from medchat.core.errors import UserError
from trainer import config
from trainer.data import RANKING_STAGES
from trainer.stages import STAGE_NAMES, STAGES, run_stage


def test_every_place_that_lists_stages_reads_the_registry():
    assert config.STAGES == STAGE_NAMES == ("pt", "sft", "rm", "ppo", "dpo")
    assert set(RANKING_STAGES) == {"rm", "dpo"}
    from trainer.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["data", "check", "x", "--stage", "ppo"])
    assert args.stage == "ppo"
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "check", "x", "--stage", "grpo"])


def test_every_entry_names_a_module_with_run():
    for name, stage in STAGES.items():
        assert stage.name == name and callable(importlib.import_module(stage.module).run)


def test_an_unknown_stage_is_a_clear_error():
    cfg = config.TrainConfig()
    cfg.stage = "grpo"
    with pytest.raises(UserError, match="unknown --stage 'grpo'; use one of pt, sft, rm, ppo, dpo"):
        run_stage(cfg)


def test_the_stage_independence_contract_covers_every_registered_stage():
    import tomllib
    from pathlib import Path

    data = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    contract = next(c for c in data["tool"]["importlinter"]["contracts"]
                    if c["name"] == "training stages import no other stage")
    assert sorted(contract["modules"]) == sorted(s.module for s in STAGES.values())
