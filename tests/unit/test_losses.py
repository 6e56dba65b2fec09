"""The MLE, policy-gradient and discriminator losses against hand-computed numbers."""

import math

import torch

from seqgan_ray.losses import discriminator_loss, mle_loss, policy_gradient_loss

LN2 = math.log(2.0)


def test_mle_loss_is_mean_token_nll():
    probs = torch.tensor([[0.5, 0.25], [1.0, 0.125]], dtype=torch.float64)
    # -(ln 1/2 + ln 1/4 + ln 1 + ln 1/8) / 4 = (1 + 2 + 0 + 3) ln2 / 4
    assert math.isclose(mle_loss(probs.log()).item(), 1.5 * LN2, rel_tol=1e-12)


def test_mle_loss_gradient_is_minus_one_over_count():
    logp = torch.tensor([[-1.0, -2.0, -3.0]], requires_grad=True)
    mle_loss(logp).backward()
    torch.testing.assert_close(logp.grad, torch.full((1, 3), -1.0 / 3))


def test_policy_gradient_loss_is_summed_reward_weighted_nll():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], dtype=torch.float64, requires_grad=True)
    rewards = torch.tensor([[0.5, 1.0], [2.0, 0.1]], dtype=torch.float64, requires_grad=True)
    loss = policy_gradient_loss(logp, rewards)
    # -(-1*0.5 - 2*1 - 0.5*2 - 3*0.1) = 0.5 + 2 + 1 + 0.3, a sum (not a mean) as the reference
    assert math.isclose(loss.item(), 3.8, rel_tol=1e-12)
    loss.backward()
    torch.testing.assert_close(logp.grad, -rewards.detach())
    assert rewards.grad is None  # rewards are constants


def test_discriminator_loss_cross_entropy_plus_l2():
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)], [math.log(3.0), 0.0]],
                          dtype=torch.float64)
    labels = torch.tensor([1, 0, 0])
    # CE: -ln 1/2, -ln 1/4, -ln 3/4; mean over the batch
    ce = (LN2 + 2 * LN2 + math.log(4.0 / 3.0)) / 3
    W = torch.tensor([[1.0, 2.0], [0.0, -1.0]], dtype=torch.float64)  # |W|^2 = 6
    b = torch.tensor([1.0, 1.0], dtype=torch.float64)                 # |b|^2 = 2
    assert math.isclose(discriminator_loss(logits, labels, W, b, 0.0).item(), ce, rel_tol=1e-12)
    # + 0.2 * (6 + 2) / 2 = 0.8
    assert math.isclose(discriminator_loss(logits, labels, W, b, 0.2).item(), ce + 0.8, rel_tol=1e-12)


def test_discriminator_loss_l2_gradient_is_lambda_w():
    logits = torch.zeros(2, 2, dtype=torch.float64)
    W = torch.tensor([[1.0, -2.0], [3.0, 0.5]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.25, -4.0], dtype=torch.float64, requires_grad=True)
    discriminator_loss(logits, torch.tensor([0, 1]), W, b, 0.5).backward()
    torch.testing.assert_close(W.grad, 0.5 * W.detach())
    torch.testing.assert_close(b.grad, 0.5 * b.detach())
