"""The PPO loop: rollout -> reward -> KL-penalised per-token rewards -> GAE -> clipped updates.

`PPOTrainer` works on any peft causal LM whose *disabled-adapter* forward is the reference policy
(the stage merges the parent chain into the base first, so the reference is the --from profile).
The reward is any callable `reward_fn(conversations) -> scores` (a reward-model scorer, or a plain
Python function in tests). It holds no files; the stage does checkpoints and logging.
"""

from __future__ import annotations

import random
import time
from typing import Callable, Sequence

import torch

from trainer.stages.ppo import core
from trainer.stages.ppo.rollout import Rollout, forward, sample
from trainer.stages.ppo.value_head import ValueHead

RewardFn = Callable[[list[list[dict]]], Sequence[float] | torch.Tensor]


def check_args(args) -> None:
    from medchat.core.errors import UserError

    checks = [
        (args.rollout_batch_size >= 1, "ppo.rollout_batch_size must be >= 1"),
        (1 <= args.mini_batch_size <= args.rollout_batch_size,
         "ppo.mini_batch_size must be between 1 and ppo.rollout_batch_size"),
        (args.ppo_epochs >= 1, "ppo.ppo_epochs must be >= 1"),
        (args.max_new_tokens >= 1, "ppo.max_new_tokens must be >= 1"),
        (args.temperature > 0, "ppo.temperature must be > 0 (PPO needs sampled replies)"),
        (args.kl_coef >= 0, "ppo.kl_coef must be >= 0"),
        (args.target_kl > 0 and args.horizon > 0, "ppo.target_kl and ppo.horizon must be > 0"),
        (0 <= args.gamma <= 1 and 0 <= args.lam <= 1, "ppo.gamma and ppo.lam must be in [0, 1]"),
        (args.cliprange > 0 and args.cliprange_value > 0, "ppo.cliprange and ppo.cliprange_value must be > 0"),
        (args.steps >= 1, "ppo.steps must be >= 1"),
    ]
    for ok, msg in checks:
        if not ok:
            raise UserError(msg)


class PPOTrainer:
    def __init__(self, model, tokenizer, reward_fn: RewardFn, args, *, template: str,
                 learning_rate: float = 1e-5, max_grad_norm: float = 1.0, max_prompt_len: int = 512,
                 value_head: ValueHead | None = None, stop_ids: set[int] | None = None, seed: int = 0,
                 sync_grads: Callable | None = None, mean_over_ranks: Callable | None = None):
        from medchat.core.engine.decode import stop_token_ids

        check_args(args)
        self.model, self.tokenizer, self.reward_fn, self.args = model, tokenizer, reward_fn, args
        self.template, self.max_prompt_len, self.max_grad_norm = template, max_prompt_len, max_grad_norm
        self.stop_ids = stop_ids or stop_token_ids(tokenizer)
        device = next(model.parameters()).device
        self.value_head = value_head or ValueHead(model.config.hidden_size)
        self.value_head.to(device)
        params = [p for p in model.parameters() if p.requires_grad] + list(self.value_head.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=learning_rate, eps=1e-5)
        self.params = params
        self.sync_grads = sync_grads  # averages gradients over ranks (trainer.dist.Dist.sync_grads)
        self.mean_over_ranks = mean_over_ranks  # trainer.dist.Dist.mean
        self.kl_ctl = core.kl_controller(args.kl_coef, args.adaptive_kl, args.target_kl, args.horizon)
        self.step_count = 0
        self.rng = random.Random(seed)
        self.seed = seed
        self._order: list[int] = []

    # --- prompts ---------------------------------------------------------------------------
    def next_prompts(self, prompts: list[list[dict]]) -> list[list[dict]]:
        """The next rollout batch, cycling through shuffled prompts (state is checkpointed)."""
        out = []
        while len(out) < self.args.rollout_batch_size:
            if not self._order:
                self._order = list(range(len(prompts)))
                self.rng.shuffle(self._order)
            out.append(prompts[self._order.pop()])
        return out

    # --- one PPO step ----------------------------------------------------------------------
    def scores_for(self, rollout: Rollout) -> torch.Tensor:
        scores = self.reward_fn(rollout.conversations)
        scores = torch.as_tensor(scores, dtype=torch.float32).detach().cpu().reshape(-1)
        if scores.numel() != len(rollout):
            raise ValueError(f"the reward function returned {scores.numel()} scores for {len(rollout)} replies")
        return scores

    @torch.no_grad()
    def evaluate(self, rollout: Rollout) -> None:
        """Fill the rollout with old log-probs, reference log-probs, values, rewards, advantages."""
        a = self.args
        batch = rollout.select(torch.arange(len(rollout)))
        self.model.eval()
        logprobs, values, entropy = forward(self.model, self.value_head, batch, a.temperature,
                                            want_values=True, want_entropy=True)
        with self.model.disable_adapter():
            ref_logprobs, _, _ = forward(self.model, self.value_head, batch, a.temperature, want_values=False)
        mask = batch["response_mask"].to(logprobs.device)
        scores = rollout.extra["scores"].to(logprobs.device)
        rewards, kl = core.penalized_rewards(scores, logprobs, ref_logprobs, mask, self.kl_ctl.value)
        if a.whiten_rewards:
            rewards = core.whiten(rewards, mask, shift_mean=False)
        advantages, returns = core.gae(rewards, values, mask, a.gamma, a.lam)
        advantages = core.whiten(advantages, mask)
        rollout.extra.update(logprobs=logprobs, ref_logprobs=ref_logprobs, values=values, returns=returns,
                             advantages=advantages, kl=kl, entropy=entropy, rewards=rewards)

    def step(self, prompts: list[list[dict]]) -> dict:
        a = self.args
        t0 = time.perf_counter()
        rollout = sample(self.model, self.tokenizer, prompts, a, self.template, self.stop_ids,
                         self.max_prompt_len, generator_seed=self.seed * 100003 + self.step_count)
        t_gen = time.perf_counter() - t0
        rollout.extra["scores"] = self.scores_for(rollout)
        self.evaluate(rollout)
        stats = self._optimise(rollout)
        ex = rollout.extra
        mask = rollout.response_mask.to(ex["kl"].device).float()
        kl_seq = ex["kl"].sum(1)
        kl_mean = float(kl_seq.mean())
        if self.mean_over_ranks is not None:  # every rank adapts the KL coefficient from the same value
            kl_mean = self.mean_over_ranks({"kl": kl_mean})["kl"]
        self.kl_ctl.update(kl_mean, len(rollout))
        self.step_count += 1
        stats.update({
            "step": self.step_count,
            "reward_mean": float(ex["scores"].mean()), "reward_std": float(ex["scores"].std(unbiased=False)),
            "kl": float(kl_seq.mean()), "kl_coef": float(self.kl_ctl.value),
            "entropy": float(core.masked_mean(ex["entropy"], mask)),
            "reply_length": float(mask.sum(1).mean()),
            "returns_mean": float(core.masked_mean(ex["returns"], mask)),
            "values_mean": float(core.masked_mean(ex["values"], mask)),
            "time_generate_s": round(t_gen, 2), "time_step_s": round(time.perf_counter() - t0, 2),
        })
        stats["sample"] = rollout.texts[0][:200]
        return stats

    def _optimise(self, rollout: Rollout) -> dict:
        a = self.args
        n = len(rollout)
        sums = {"policy_loss": 0.0, "value_loss": 0.0, "loss": 0.0, "clip_fraction": 0.0,
                "value_clip_fraction": 0.0, "approx_kl": 0.0, "grad_norm": 0.0}
        count = 0
        self.model.eval()  # dropout off: the ratio must compare the same function
        with torch.enable_grad():
            for _ in range(a.ppo_epochs):
                perm = torch.randperm(n)
                for start in range(0, n, a.mini_batch_size):
                    mb = rollout.select(perm[start:start + a.mini_batch_size])
                    logprobs, values, _ = forward(self.model, self.value_head, mb, a.temperature)
                    mask = mb["response_mask"].to(logprobs.device)
                    pg, clipfrac, approx_kl = core.policy_loss(logprobs, mb["logprobs"], mb["advantages"], mask,
                                                               a.cliprange)
                    vf, vclip = core.value_loss(values, mb["values"], mb["returns"], mask, a.cliprange_value)
                    loss = pg + a.vf_coef * vf
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.sync_grads is not None:
                        self.sync_grads(self.params)
                    grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
                    self.optimizer.step()
                    for k, v in (("policy_loss", pg), ("value_loss", vf), ("loss", loss), ("clip_fraction", clipfrac),
                                 ("value_clip_fraction", vclip), ("approx_kl", approx_kl), ("grad_norm", grad_norm)):
                        sums[k] += float(v.detach()) if torch.is_tensor(v) else float(v)
                    count += 1
        return {k: v / max(count, 1) for k, v in sums.items()}

    def train(self, prompts: list[list[dict]], steps: int | None = None,
              on_step: Callable[[dict], None] | None = None) -> list[dict]:
        """Run PPO steps until `steps` (default args.steps) are done in total; returns their stats."""
        if not prompts:
            from medchat.core.errors import UserError

            raise UserError("PPO needs prompts: the dataset gave none")
        history = []
        total = steps if steps is not None else self.args.steps
        while self.step_count < total:
            stats = self.step(self.next_prompts(prompts))
            history.append(stats)
            if on_step:
                on_step(stats)
        return history

    # --- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"step": self.step_count, "kl_coef": self.kl_ctl.value, "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.getstate(), "order": list(self._order), "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step"])
        self.kl_ctl.value = float(state["kl_coef"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.setstate(state["rng"])
        self._order = list(state["order"])
        torch.set_rng_state(state["torch_rng"])
