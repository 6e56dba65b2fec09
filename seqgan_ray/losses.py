"""The losses, as pure functions of tensors."""

from __future__ import annotations

import torch
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
    return F.cross_entropy(logits, labels) + l2_reg * output_l2(out_weight, out_bias)


def output_l2(out_weight: Tensor, out_bias: Tensor) -> Tensor:
    """(‖W‖² + ‖b‖²)/2 of D's output layer: what discriminator.l2_reg weighs in every D step."""
    return 0.5 * (out_weight.pow(2).sum() + out_bias.pow(2).sum())


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


def gaussian_mmd(x: Tensor, y: Tensor, bandwidths: list[float]) -> Tensor:
    """The maximum mean discrepancy between the rows of `x` (B, F) and of `y` (B', F) under the
    kernel k(a, b) = Σ_σ exp(−‖a − b‖² / (2σ²)) over `bandwidths`: the square root of the biased
    estimate mean k(x, x') + mean k(y, y') − 2 mean k(x, y), as TextGAN's authors compute it
    (theano/model/text_gan.py, `feature_match == 'mmd'`, lines 356-373). It needs the whole batch:
    a batch split across processes must gather its features first."""
    def mean_kernel(a: Tensor, b: Tensor) -> Tensor:
        sq = (a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None, :] - 2 * a @ b.T).clamp(min=0)  # (A, B')
        return sum(torch.exp(-sq / (2 * s * s)).mean() for s in bandwidths)

    mmd2 = mean_kernel(x, x) + mean_kernel(y, y) - 2 * mean_kernel(x, y)
    return mmd2.clamp(min=1e-12).sqrt()  # ≥ 0 in exact arithmetic; the floor keeps sqrt's gradient finite


def mean_feature_distance(x: Tensor, y: Tensor) -> Tensor:
    """The root mean square of the difference of the feature means of `x` (B, F) and `y` (B', F):
    the objective of the TextGAN authors' TF code (tensorflow/textGAN.py, `mean_dist`, line 191)."""
    return (x.mean(0) - y.mean(0)).pow(2).mean().clamp(min=1e-12).sqrt()


def textgan_discriminator_loss(real: Tensor, fake: Tensor, distance: Tensor, z_hat: Tensor, z: Tensor, *,
                               mmd_weight: float, recon_weight: float) -> Tensor:
    """TextGAN's D loss, with the signs of the authors' code (theano/model/text_gan.py, line 462:
    d_cost = gan_cost_d − λ_fm·fake_obj + λ_recon·r_cost): the standard GAN loss on the logits of
    real and fake (B, 1), minus `mmd_weight` times the feature `distance` G minimises (so D
    maximises it), plus `recon_weight` times the mean squared error of the reconstructed codes
    `z_hat` against the codes `z` (B, Z) that made the fakes (so D minimises it)."""
    gan = F.softplus(-real).mean() + F.softplus(fake).mean()
    return gan - mmd_weight * distance + recon_weight * (z_hat - z).pow(2).mean()
