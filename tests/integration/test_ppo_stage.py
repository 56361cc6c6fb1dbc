"""PPO stage: reference = the --from profile, install as a usable chat profile, resume, clear errors."""

import json
import math

import pytest
import torch

from medchat.core.engine.protocol import collect
from medchat.core.errors import UserError
from medchat.core.profiles import ProfileStore
from test_ppo_helpers import install_profile, small_cfg, write_pairs
from trainer.stages import ppo, rm

PPO_SMALL = {"ppo.steps": 2, "ppo.rollout_batch_size": 4, "ppo.mini_batch_size": 2, "ppo.max_new_tokens": 6,
             "ppo.ppo_epochs": 2, "training.learning_rate": 1e-3}


def _ppo_cfg(tmp_path, tiny_model_dir, **over):
    train, _ = write_pairs(tmp_path / "data")
    base = {"model.base": str(tiny_model_dir), "data.datasets": str(train), **PPO_SMALL}
    return small_cfg("ppo", "tiny-ppo", **{**base, **over})


def reply_length(conversations):
    return [float(len(c[-1]["content"])) for c in conversations]


def test_reference_is_the_from_profile_not_the_raw_base(tiny_model_dir, lora_a):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trainer.modeling import load_merged

    install_profile("tiny-sft", tiny_model_dir, lora_a)
    cfg = small_cfg("ppo", "x", **{"model.from_profile": "tiny-sft"})
    tm = load_merged(cfg)
    assert tm.chain == ["tiny-sft", "x"]
    with torch.no_grad():  # make the new adapter matter
        for name, p in tm.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    ids = torch.tensor([[5, 17, 42, 99, 7, 64]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        raw = base(input_ids=ids).logits
        sft = PeftModel.from_pretrained(base, str(lora_a)).eval()(input_ids=ids).logits
        tm.model.eval()
        policy = tm.model(input_ids=ids).logits
        with tm.model.disable_adapter():
            ref = tm.model(input_ids=ids).logits
    assert torch.allclose(ref, sft, atol=1e-4)
    assert not torch.allclose(ref, raw, atol=1e-3) and not torch.allclose(policy, ref, atol=1e-3)


def test_ppo_with_a_reward_profile_installs_a_usable_chat_profile(tmp_path, tiny_model_dir, lora_a):
    from medchat.core.engine.engine import ChatEngine
    from medchat.core.settings import GenerationSettings

    install_profile("tiny-sft", tiny_model_dir, lora_a)
    train, val = write_pairs(tmp_path / "data")
    rm.run(small_cfg("rm", "tiny-rm", **{"model.from_profile": "tiny-sft", "data.datasets": str(train),
                                         "data.val_size": 0, "training.max_steps": 2}), quiet=True)
    profile = ppo.run(_ppo_cfg(tmp_path, tiny_model_dir, **{"model.from_profile": "tiny-sft",
                                                            "reward.reward": "tiny-rm"}), quiet=True)
    assert profile.kind == "chat" and profile.stage == "ppo" and profile.chain == ["tiny-sft", "tiny-ppo"]
    assert profile.metrics["steps"] == 2 and profile.metrics["reward"] == "tiny-rm"
    run_dir = next((tmp_path / "medchat-home" / "runs").glob("tiny-ppo-*"))
    records = [json.loads(line) for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    for key in ("reward_mean", "reward_std", "kl", "entropy", "value_loss", "policy_loss", "clip_fraction",
                "reply_length", "kl_coef"):
        assert all(math.isfinite(r[key]) for r in records), key
    for f in ("loss.png", "reward.png", "value_head.safetensors", "final/adapter_config.json"):
        assert (run_dir / f).exists(), f
    engine = ChatEngine(str(tiny_model_dir))
    assert engine.use("tiny-ppo").name == "tiny-ppo"
    settings = GenerationSettings(max_new_tokens=4, seed=0)
    _, stats = collect(engine.stream([{"role": "user", "content": "hello"}], settings))
    assert stats.completion_tokens >= 0 and stats.stop_reason


def test_ppo_resume_continues_from_the_last_checkpoint(tmp_path, tiny_model_dir):
    cfg = _ppo_cfg(tmp_path, tiny_model_dir, **{"ppo.steps": 3, "training.save_steps": 1})

    def stop_after_two(stats):
        if stats["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ppo.run(cfg, quiet=True, reward_fn=reply_length, on_step=stop_after_two)
    assert not ProfileStore().exists("tiny-ppo")
    run_dir = next((tmp_path / "medchat-home" / "runs").glob("tiny-ppo-*"))
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"
    resumed = _ppo_cfg(tmp_path, tiny_model_dir, **{"training.resume": "latest"})
    seen = []
    profile = ppo.run(resumed, quiet=True, reward_fn=reply_length, on_step=lambda s: seen.append(s["step"]))
    assert seen == [3] and profile.metrics["steps"] == 3
    steps = [json.loads(line)["step"] for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_ppo_reward_and_base_errors(tmp_path, tiny_model_dir, other_model_dir, lora_a):
    from tests.support.fixtures_models import make_lora_adapter

    install_profile("tiny-sft", tiny_model_dir, lora_a)
    with pytest.raises(UserError, match="--reward NAME is required"):
        ppo.run(_ppo_cfg(tmp_path, tiny_model_dir), quiet=True)
    with pytest.raises(UserError, match="'tiny-sft' is a chat profile, not a reward model"):
        ppo.run(_ppo_cfg(tmp_path, tiny_model_dir, **{"reward.reward": "tiny-sft"}), quiet=True)
    with pytest.raises(UserError, match="unknown profile 'nope'"):
        ppo.run(_ppo_cfg(tmp_path, tiny_model_dir, **{"reward.reward": "nope"}), quiet=True)
    install_profile("other-sft", other_model_dir, make_lora_adapter(other_model_dir, tmp_path / "other-lora"))
    with pytest.raises(UserError, match="--from other-sft was trained on base"):
        ppo.run(_ppo_cfg(tmp_path, tiny_model_dir, **{"model.from_profile": "other-sft"}), quiet=True,
                reward_fn=reply_length)
    with pytest.raises(UserError, match="--continue is not supported"):
        ppo.run(_ppo_cfg(tmp_path, tiny_model_dir, **{"model.from_profile": "tiny-sft",
                                                      "model.continue_parent": True}),
                quiet=True, reward_fn=reply_length)
    assert not ProfileStore().exists("tiny-ppo")
