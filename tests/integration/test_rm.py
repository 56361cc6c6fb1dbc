"""Reward model stage on the tiny model: learns a separable pairwise set, installs a reward profile."""

import json

import pytest
import torch

from medchat.core.errors import UserError
from medchat.core.profiles import ProfileStore
from test_ppo_helpers import BAD, GOOD, install_profile, small_cfg, write_pairs
from trainer.reward_model import load_reward_model
from trainer.stages import rm


def _cfg(tmp_path, tiny_model_dir, name="tiny-rm", **over):
    train, val = write_pairs(tmp_path / "data")
    base = {"model.base": str(tiny_model_dir), "data.datasets": str(train), "data.val_dataset": str(val),
            "training.max_steps": 10, "training.batch_size": 4, "training.learning_rate": 5e-3}
    return small_cfg("rm", name, **{**base, **over})


def test_rm_learns_separable_pairs_and_installs_a_reward_profile(tmp_path, tiny_model_dir, lora_a):
    install_profile("tiny-sft", tiny_model_dir, lora_a)
    profile = rm.run(_cfg(tmp_path, tiny_model_dir, **{"model.from_profile": "tiny-sft"}), quiet=True)
    assert profile.kind == "reward" and profile.stage == "rm" and profile.chain == ["tiny-sft", "tiny-rm"]
    assert profile.metrics["eval_accuracy"] > 0.5 and profile.metrics["val_pairs"] == 4
    adapter = ProfileStore().adapter_dir("tiny-rm")
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS" and "score" in (config.get("modules_to_save") or [])
    from safetensors import safe_open

    with safe_open(adapter / "adapter_model.safetensors", "pt") as fh:
        assert any("score" in k for k in fh.keys())
    # reloading for scoring gives the trained preferences on unseen prompts
    scorer = load_reward_model("tiny-rm")
    convs = [[{"role": "user", "content": q}, {"role": "assistant", "content": reply}]
             for q in ("My wrist hurts", "I feel faint") for reply in (GOOD, BAD)]
    scores = scorer.score(convs)
    assert scores.shape == (4,) and torch.isfinite(scores).all()
    assert scores[0] > scores[1] and scores[2] > scores[3]
    # the trained reward model really differs from the untrained head (scores are not constant)
    assert float(scores.std()) > 0


def test_reward_profile_cannot_chat_and_chat_profile_cannot_score(tmp_path, tiny_model_dir, lora_a):
    from medchat.core.engine.engine import ChatEngine

    rm.run(_cfg(tmp_path, tiny_model_dir, **{"training.max_steps": 1}), quiet=True)
    engine = ChatEngine(str(tiny_model_dir))
    with pytest.raises(UserError, match="reward profile"):
        engine.use("tiny-rm")
    install_profile("tiny-sft", tiny_model_dir, lora_a)
    with pytest.raises(UserError, match="not a reward model"):
        load_reward_model("tiny-sft")


def test_rm_bad_inputs_are_clear_errors(tmp_path, tiny_model_dir, other_model_dir, lora_a):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "chosen": "c", "rejected": "r"}) + "\n"
                   + json.dumps({"prompt": "q2", "chosen": "c2"}) + "\n")
    with pytest.raises(UserError, match=r"bad\.jsonl row 2: missing field 'rejected'"):
        rm.run(_cfg(tmp_path, tiny_model_dir, **{"data.datasets": str(bad), "data.val_dataset": ""}), quiet=True)
    with pytest.raises(UserError, match="ranking data"):
        rm.run(_cfg(tmp_path, tiny_model_dir, **{"data.datasets": "covid_sft", "data.val_dataset": ""}), quiet=True)
    from tests.support.fixtures_models import make_lora_adapter

    install_profile("other-sft", other_model_dir, make_lora_adapter(other_model_dir, tmp_path / "other-lora"))
    # --from a profile of another base, with --base pointing elsewhere
    with pytest.raises(UserError, match="other-sft"):
        rm.run(_cfg(tmp_path, tiny_model_dir, **{"model.from_profile": "other-sft"}), quiet=True)
    assert not ProfileStore().exists("tiny-rm")
