"""PPO math as pure tensor functions (no models), so each piece is unit-testable by hand.

Shapes: batch-major (B, T) over *response* tokens only; `mask` is 1 for real response tokens and 0
for padding after the reply ended. Conventions follow the RLHF PPO of Ziegler et al. (2019) and
Stiennon et al. (2020), as trl's old PPOTrainer implemented them:
  per-token reward  r_t = -kl_coef * (logp_t - ref_logp_t)  (+ the scalar score at the last token)
  GAE               delta_t = r_t + gamma * V_{t+1} - V_t,  A_t = delta_t + gamma * lam * A_{t+1}
  policy loss       max(-A * ratio, -A * clip(ratio, 1-eps, 1+eps))
  value loss        0.5 * max((V - R)^2, (clip(V, V_old-eps_v, V_old+eps_v) - R)^2)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None, dim=None) -> torch.Tensor:
    if mask is None:
        return x.mean() if dim is None else x.mean(dim)
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor | None = None, unbiased: bool = True) -> torch.Tensor:
    mean = masked_mean(x, mask)
    centred = (x - mean) ** 2
    var = masked_mean(centred, mask)
    if unbiased:
        n = x.numel() if mask is None else mask.sum()
        if n > 1:  # Bessel's correction, as torch.var does by default
            var = var * n / (n - 1)
    return var


def whiten(x: torch.Tensor, mask: torch.Tensor | None = None, shift_mean: bool = True,
           eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries; shift_mean=False keeps the mean (for rewards)."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    if mask is not None:
        out = out * mask.to(out.dtype)
    return out


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of a (B, T) mask (0 for an all-zero row)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return (positions * mask.long()).max(dim=1).values


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token KL(policy || ref) estimate from sampled tokens' log-probs.

    k1 = log p - log q (unbiased, can be negative per token); k3 = (r - 1) - log r with r = q/p
    (unbiased, always >= 0; Schulman's "Approximating KL divergence").
    """
    diff = logprobs - ref_logprobs
    if estimator == "k1":
        return diff
    if estimator == "k3":
        return torch.expm1(-diff) + diff
    raise ValueError(f"unknown KL estimator '{estimator}'")


def penalized_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                      mask: torch.Tensor, kl_coef: float, estimator: str = "k1"):
    """Per-token rewards: -kl_coef * KL at each token, plus the sequence score on its last token.

    Returns (rewards, kl) both (B, T) and zero outside the mask.
    """
    maskf = mask.to(logprobs.dtype)
    kl = kl_per_token(logprobs, ref_logprobs, estimator) * maskf
    rewards = -kl_coef * kl
    idx = last_index(mask)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, idx] += scores.to(rewards.dtype) * (mask.sum(1) > 0).to(rewards.dtype)
    return rewards, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95):
    """Generalized advantage estimation over each row; the value after the last real token is 0.

    Returns (advantages, returns) with returns = advantages + values, zero outside the mask.
    """
    maskf = mask.to(values.dtype)
    rewards, values = rewards * maskf, values * maskf
    T = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(values[:, 0])
    for t in reversed(range(T)):
        m = maskf[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        # padding positions pass nothing backwards: they reset the recursion to zero
        advantages[:, t] = adv * m
        next_adv = adv * m
        next_value = values[:, t] * m
    returns = (advantages + values) * maskf
    return advantages, returns


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cliprange: float):
    """Clipped surrogate objective (to minimise). Returns (loss, clip_fraction, approx_kl)."""
    log_ratio = (logprobs - old_logprobs) * mask.to(logprobs.dtype)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).to(logprobs.dtype), mask)
    approx_kl = 0.5 * masked_mean(log_ratio ** 2, mask)
    return loss, clipfrac.detach(), approx_kl.detach()


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, cliprange_value: float):
    """Clipped value loss (to minimise). Returns (loss, clip_fraction)."""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(loss_unclipped, loss_clipped), mask)
    clipfrac = masked_mean((loss_clipped > loss_unclipped).to(values.dtype), mask)
    return loss, clipfrac.detach()


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution at each position: logsumexp(z) - sum softmax(z) z."""
    probs = F.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(-1)


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) at each position; logits (B, T, V), tokens (B, T)."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return torch.gather(logp, 2, tokens.unsqueeze(-1)).squeeze(-1)


@dataclass
class FixedKLController:
    value: float

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


@dataclass
class AdaptiveKLController:
    """Ziegler et al. (2019): move the KL coefficient so the measured KL tracks `target`.

    error = clip(kl / target - 1, -0.2, 0.2);  coef *= 1 + error * n_steps / horizon
    """

    value: float
    target: float
    horizon: int

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


def kl_controller(init_kl: float, adaptive: bool, target: float, horizon: int):
    if adaptive:
        return AdaptiveKLController(init_kl, target, horizon)
    return FixedKLController(init_kl)
