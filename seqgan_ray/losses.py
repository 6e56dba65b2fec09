"""The three losses, as pure functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def mle_loss(log_probs: Tensor) -> Tensor:
    """Mean per-token negative log-likelihood, from log G(y_t | y_<t) of shape (B, T)."""
    return -log_probs.mean()


def policy_gradient_loss(log_probs: Tensor, rewards: Tensor) -> Tensor:
    """Eq. 8: −Σ_{b,t} log G_θ(y_t | Y_1:t−1) · Q(Y_1:t−1, y_t), summed as the reference code does.

    log_probs (B, T) carries the gradient; rewards (B, T) are constants.
    """
    return -(log_probs * rewards.detach()).sum()


def discriminator_loss(logits: Tensor, labels: Tensor, out_weight: Tensor, out_bias: Tensor,
                       l2_reg: float) -> Tensor:
    """Eq. 5 as cross-entropy of real (label 1) vs generated (label 0), mean over the batch,
    plus λ·(‖W‖² + ‖b‖²)/2 on the output layer (tf.nn.l2_loss in the reference code)."""
    l2 = 0.5 * (out_weight.pow(2).sum() + out_bias.pow(2).sum())
    return F.cross_entropy(logits, labels) + l2_reg * l2
