"""PPO math against values worked out by hand (see the comments for each computation)."""

import math

import pytest
import torch

from trainer.stages.ppo import core


def test_gae_and_returns_by_hand():
    # gamma=0.9, lam=0.5; value after the last token is 0
    # t2: delta = 2 - 1.5 = 0.5                 A2 = 0.5
    # t1: delta = 0 + 0.9*1.5 - 1.0 = 0.35      A1 = 0.35 + 0.45*0.5 = 0.575
    # t0: delta = 1 + 0.9*1.0 - 0.5 = 1.4       A0 = 1.4 + 0.45*0.575 = 1.65875
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 1.0, 1.5]])
    adv, ret = core.gae(rewards, values, torch.ones(1, 3), gamma=0.9, lam=0.5)
    assert torch.allclose(adv, torch.tensor([[1.65875, 0.575, 0.5]]))
    assert torch.allclose(ret, torch.tensor([[2.15875, 1.575, 2.0]]))


def test_gae_ignores_padding_after_the_reply():
    # gamma=lam=1: the return is the sum of the rewards still to come; padding (99, 7) must not leak
    rewards = torch.tensor([[1.0, 3.0, 99.0]])
    values = torch.tensor([[0.5, 1.0, 7.0]])
    mask = torch.tensor([[1, 1, 0]])
    adv, ret = core.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[4.0, 3.0, 0.0]]))
    assert torch.allclose(adv, torch.tensor([[3.5, 2.0, 0.0]]))


def test_clipped_policy_objective_by_hand():
    # ratios 1.5, 0.5, 1.1, 1.5 with advantages 1, 1, -1, -1 and eps 0.2:
    # t0: max(-1.5, -1.2) = -1.2 (clipped)   t1: max(-0.5, -0.8) = -0.5
    # t2: max(1.1, 1.1) = 1.1                t3: max(1.5, 1.2) = 1.5
    # mean = 0.9 / 4 = 0.225; one of four tokens clipped
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1, 1.5]]))
    old = torch.zeros(1, 4)
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    loss, clipfrac, approx_kl = core.policy_loss(new, old, adv, torch.ones(1, 4), cliprange=0.2)
    assert loss.item() == pytest.approx(0.225, abs=1e-6)
    assert clipfrac.item() == pytest.approx(0.25)
    expected_kl = 0.5 * sum(math.log(r) ** 2 for r in (1.5, 0.5, 1.1, 1.5)) / 4
    assert approx_kl.item() == pytest.approx(expected_kl, rel=1e-5)


def test_policy_loss_gradient_vanishes_when_clipped():
    new = torch.log(torch.tensor([[1.5]])).requires_grad_()
    loss, _, _ = core.policy_loss(new, torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1), 0.2)
    loss.backward()
    assert new.grad.abs().item() == 0.0


def test_value_clipping_by_hand():
    # old 0, eps 0.2:
    # t0: v=0.5 -> clipped 0.2; (0.5-1)^2=0.25 vs (0.2-1)^2=0.64 -> 0.64 (clipped term wins)
    # t1: v=-0.1 inside the range -> 1.21 both
    # t2: v=0.3 -> clipped 0.2; (1.3)^2=1.69 vs (1.2)^2=1.44 -> 1.69
    # loss = 0.5 * (0.64 + 1.21 + 1.69) / 3 = 0.59
    values = torch.tensor([[0.5, -0.1, 0.3]])
    loss, clipfrac = core.value_loss(values, torch.zeros(1, 3), torch.tensor([[1.0, 1.0, -1.0]]),
                                     torch.ones(1, 3), cliprange_value=0.2)
    assert loss.item() == pytest.approx(0.59, abs=1e-6)
    assert clipfrac.item() == pytest.approx(1 / 3)


def test_kl_penalty_rewards_score_on_last_token():
    # kl = logp - ref = [0.5, -1, 0, (masked)]; rewards = -0.1*kl, plus score 2 on the last real token
    logp = torch.tensor([[-1.0, -2.0, -0.5, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5, -3.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    rewards, kl = core.penalized_rewards(torch.tensor([2.0]), logp, ref, mask, kl_coef=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, -1.0, 0.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.1, 2.0, 0.0]]))


def test_kl_k3_estimator_is_non_negative_and_zero_at_equality():
    logp = torch.tensor([[-1.0, -2.0, -0.5]])
    ref = torch.tensor([[-1.5, -1.0, -0.5]])
    k3 = core.kl_per_token(logp, ref, "k3")
    # r = q/p = exp(ref - logp): t0 r=e^-0.5 -> (r-1) - log r = e^-0.5 - 1 + 0.5
    assert k3[0, 0].item() == pytest.approx(math.exp(-0.5) - 0.5, rel=1e-6)
    assert k3[0, 2].item() == pytest.approx(0.0, abs=1e-7)
    assert (k3 >= 0).all()


def test_whitening_by_hand():
    # masked entries 2, 4, 6: mean 4, unbiased var (4+0+4)/2 = 4, std 2
    x = torch.tensor([[2.0, 4.0, 6.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    assert torch.allclose(core.whiten(x, mask), torch.tensor([[-1.0, 0.0, 1.0, 0.0]]), atol=1e-6)
    assert torch.allclose(core.whiten(x, mask, shift_mean=False), torch.tensor([[3.0, 4.0, 5.0, 0.0]]),
                          atol=1e-6)
    # unmasked: 1..4 -> mean 2.5, var 5/3
    y = core.whiten(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert y[0].item() == pytest.approx(-1.5 / math.sqrt(5 / 3), rel=1e-5)


def test_adaptive_kl_controller_update_by_hand():
    # error = clip(kl/target - 1, -0.2, 0.2); coef *= 1 + error * n / horizon
    ctl = core.kl_controller(0.2, adaptive=True, target=6.0, horizon=10000)
    ctl.update(9.0, 8)  # error 0.5 -> 0.2: 0.2 * 1.00016
    assert ctl.value == pytest.approx(0.200032)
    ctl = core.kl_controller(0.2, adaptive=True, target=6.0, horizon=10000)
    ctl.update(6.6, 8)  # error 0.1: 0.2 * 1.00008
    assert ctl.value == pytest.approx(0.200016)
    ctl.update(0.0, 8)  # error -1 -> -0.2: * 0.99984
    assert ctl.value == pytest.approx(0.200016 * 0.99984)
    fixed = core.kl_controller(0.2, adaptive=False, target=6.0, horizon=10000)
    fixed.update(100.0, 8)
    assert fixed.value == 0.2


def test_entropy_and_logprobs_from_logits():
    logits = torch.zeros(1, 2, 4)
    logits[0, 1] = torch.tensor([0.0, math.log(3.0), 0.0, -1e9])  # probs 0.2, 0.6, 0.2, 0
    ent = core.entropy_from_logits(logits)
    assert ent[0, 0].item() == pytest.approx(math.log(4), rel=1e-6)
    assert ent[0, 1].item() == pytest.approx(-(0.4 * math.log(0.2) + 0.6 * math.log(0.6)), rel=1e-5)
    lp = core.logprobs_from_logits(logits, torch.tensor([[2, 1]]))
    assert lp[0, 0].item() == pytest.approx(math.log(0.25), rel=1e-6)
    assert lp[0, 1].item() == pytest.approx(math.log(0.6), rel=1e-5)


def test_last_index():
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    assert core.last_index(mask).tolist() == [1, 3, 0]
