"""The losses, as pure functions of tensors."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def mle_loss(log_probs: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean per-token negative log-likelihood, from log G(y_t | y_<t) of shape (B, T), over
    the tokens where `mask` (B, T) is true (all of them without one): padding does not count."""
    if mask is None:
        return -log_probs.mean()
    return -(log_probs * mask).sum() / mask.sum().clamp(min=1)


def policy_gradient_loss(log_probs: Tensor, rewards: Tensor, mask: Tensor | None = None) -> Tensor:
    """Eq. 8: −Σ_{b,t} log G_θ(y_t | Y_1:t−1) · Q(Y_1:t−1, y_t), summed as the reference code does.

    log_probs (B, T) carries the gradient; rewards (B, T) are constants; tokens after a
    sequence's end (where `mask` is false) are not the policy's choices and do not count.
    """
    weighted = log_probs * rewards.detach()
    return -(weighted if mask is None else weighted * mask).sum()


def discriminator_loss(logits: Tensor, labels: Tensor, out_weight: Tensor, out_bias: Tensor,
                       l2_reg: float) -> Tensor:
    """Eq. 5 as cross-entropy of real (label 1) vs generated (label 0), mean over the batch,
    plus λ·(‖W‖² + ‖b‖²)/2 on the output layer (tf.nn.l2_loss in the reference code)."""
    l2 = 0.5 * (out_weight.pow(2).sum() + out_bias.pow(2).sum())
    return F.cross_entropy(logits, labels) + l2_reg * l2


def relaxed_discriminator_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """D's loss in the relaxed GANs from its logits of real and of generated (soft) sequences,
    each (B, K) (K: RelGAN's representations; 1 for SeqGAN's CNN), paired row by row.
    `rsgan`: −log σ(real − fake); `standard`: −log σ(real) − log(1 − σ(fake)). Means over all."""
    if kind == "rsgan":
        return F.softplus(fake - real).mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def relaxed_generator_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """G's loss, the same logits: `rsgan`: −log σ(fake − real); `standard` (non-saturating):
    −log σ(fake)."""
    if kind == "rsgan":
        return F.softplus(real - fake).mean()
    return F.softplus(-fake).mean()
