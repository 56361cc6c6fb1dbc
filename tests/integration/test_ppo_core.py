"""PPO core on the tiny model with a programmatic reward: the reward rises and KL stays finite."""

import math

import pytest
import torch

from medchat.core.errors import UserError
from trainer.config import PPOArgs
from trainer.stages.ppo.trainer import PPOTrainer

PROMPTS = [[{"role": "user", "content": q}] for q in ("I have a fever", "My throat hurts", "Hello doctor",
                                                       "Is this serious?")]


def e_rate(conversations):
    """Toy reward: how much of the reply is the letter 'e' (x10)."""
    out = []
    for conv in conversations:
        text = conv[-1]["content"]
        out.append(10.0 * text.count("e") / max(len(text), 1))
    return out


def _policy(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0,
                                             task_type="CAUSAL_LM"))
    return model, tok


def test_ppo_raises_mean_reward_and_keeps_kl_finite(tiny_model_dir):
    model, tok = _policy(tiny_model_dir)
    # temperature 0.5 sharpens the random model's near-uniform next-token distribution, so a LoRA
    # change moves probability mass visibly within a few steps; logprobs use the same temperature
    args = PPOArgs(rollout_batch_size=32, mini_batch_size=16, max_new_tokens=4, temperature=0.5, steps=16)
    trainer = PPOTrainer(model, tok, e_rate, args, template=tok.chat_template, learning_rate=1e-2, seed=1)
    history = trainer.train(PROMPTS)
    assert [h["step"] for h in history] == list(range(1, 17))
    early = sum(h["reward_mean"] for h in history[:3]) / 3
    late = sum(h["reward_mean"] for h in history[-3:]) / 3
    assert late > early * 1.5, [round(h["reward_mean"], 2) for h in history]
    for h in history:
        assert math.isfinite(h["kl"]) and math.isfinite(h["policy_loss"]) and math.isfinite(h["value_loss"])
        assert 0.0 <= h["clip_fraction"] <= 1.0 and h["entropy"] > 0 and 1 <= h["reply_length"] <= 4
    assert history[-1]["kl"] > 0  # the policy did move away from the reference
    # the adaptive controller is fed each step's KL: the coefficient rises after steps above target, falls below
    coefs = [args.kl_coef] + [h["kl_coef"] for h in history]
    for prev, now, h in zip(coefs, coefs[1:], history):
        assert (now > prev) == (h["kl"] > args.target_kl), (prev, now, h["kl"])


def test_reference_is_the_policy_with_the_new_adapter_disabled(tiny_model_dir):
    from trainer.stages.ppo.rollout import encode_prompts, forward

    model, tok = _policy(tiny_model_dir)
    with torch.no_grad():  # give the new adapter a non-zero effect
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    ids, mask = encode_prompts(tok, PROMPTS[:2], tok.chat_template, 64, tok.pad_token_id)
    resp = torch.randint(5, 300, (2, 5))
    batch = {"query_ids": ids, "query_mask": mask, "response_ids": resp, "response_mask": torch.ones_like(resp)}
    trainer = PPOTrainer(model, tok, e_rate, PPOArgs(rollout_batch_size=2, mini_batch_size=2),
                         template=tok.chat_template)
    with torch.no_grad():
        pol, _, _ = forward(model, trainer.value_head, batch, 1.0)
        with model.disable_adapter():
            ref, _, _ = forward(model, trainer.value_head, batch, 1.0)
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
        plain, _, _ = forward(base, trainer.value_head, batch, 1.0)
    assert not torch.allclose(pol, ref)
    assert torch.allclose(ref, plain, atol=1e-5)


def test_bad_ppo_settings_are_user_errors(tiny_model_dir):
    model, tok = _policy(tiny_model_dir)
    for bad in (PPOArgs(mini_batch_size=16, rollout_batch_size=8), PPOArgs(temperature=0.0), PPOArgs(steps=0)):
        with pytest.raises(UserError):
            PPOTrainer(model, tok, e_rate, bad, template=tok.chat_template)
    trainer = PPOTrainer(model, tok, lambda convs: [1.0], PPOArgs(rollout_batch_size=2, mini_batch_size=1,
                                                                  max_new_tokens=2, steps=1),
                         template=tok.chat_template)
    with pytest.raises(ValueError, match="returned 1 scores for 2 replies"):
        trainer.train(PROMPTS)
