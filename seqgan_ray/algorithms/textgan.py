"""TextGAN (Zhang, Gan, Carin; NIPS 2016 workshop and ICML 2017), from the authors' code
(dreasysnail/textGAN_public, theano/model/text_gan.py and tensorflow/textGAN.py).

G (generator.kind latent_lstm) draws a code z ~ U(−1, 1)^Z per sequence and generates by
soft-argmax: each step's softmax(L·logits), L = textgan.soft_argmax, is fed back as its mix
of embeddings and handed to D as a soft token, so the whole sequence is differentiable. G steps
down a distance between D's pooled CNN features of a real and of a generated batch
(textgan.match): the Gaussian-kernel MMD (ICML, the Theano code) or the RMS difference of the
feature means (the TF code). D steps down the standard GAN loss, minus λ_fm times that distance
(D maximises it), plus λ_recon times its error reconstructing z from the fakes' features
(text_gan.py, line 462; losses.textgan_discriminator_loss). Texygen flips both signs.

The engine is the relaxed GANs' (relaxed.alternate): an iteration is train.g_steps G steps, then
relaxed.d_steps D steps, each on a fresh real batch and fresh fakes; the roles hold frozen
copies of each other's networks, refreshed once an iteration; codes, noise and dropout come
from the roles' checkpointed streams. With textgan.grad_rescale > 0 every step's gradient, G's
and D's, is rescaled to that norm, as the authors' optimiser does (5), instead of clipped. The
MMD is over the whole batch, which one role computes (nothing splits a batch across processes
here).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..config import Config, TextGANConfig
from ..losses import gaussian_mmd, mean_feature_distance, textgan_discriminator_loss
from ..models.latent import LatentLSTMPolicy
from . import Context, register
from .relaxed import Relaxed, alternate


def soft_fakes(generator: LatentLSTMPolicy, rng: torch.Generator, num: int,
               tc: TextGANConfig) -> tuple[Tensor, Tensor]:
    """`num` codes z (num, Z) and the soft-argmax sequences they generate (num, T, V)."""
    z = generator.draw_latent(num, rng)
    _, soft = generator.sample_relaxed(num, tc.soft_argmax, feed="soft", generator=rng,
                                       initial=generator.latent_state(z), noise=tc.noise)
    return z, soft


def feature_distance(tc: TextGANConfig, fake: Tensor, real: Tensor) -> Tensor:
    """textgan.match between D's features of the generated (B, F) and the real batch (B', F)."""
    return gaussian_mmd(fake, real, tc.bandwidths) if tc.match == "mmd" else mean_feature_distance(fake, real)


def generator_objective(generator: LatentLSTMPolicy, critic, rng: torch.Generator, real: Tensor,
                        tc: TextGANConfig) -> Tensor:
    """G's loss for one batch: the distance of fresh soft fakes' features from `real`'s, through
    D's copy (its dropout plays no part: the features are taken before it)."""
    _, soft = soft_fakes(generator, rng, len(real), tc)
    with torch.no_grad():
        real_feat = critic.features(real)  # (B, F)
    return feature_distance(tc, critic.features(soft), real_feat)


def discriminator_objective(discriminator, generator: LatentLSTMPolicy, rng: torch.Generator, real: Tensor,
                            tc: TextGANConfig) -> Tensor:
    """D's loss for one batch: `real` against fresh soft fakes from G's copy (no gradient to G)."""
    with torch.no_grad():
        z, soft = soft_fakes(generator, rng, len(real), tc)
    real_logit, real_feat = discriminator.score_and_features(real, generator=rng)
    fake_logit, fake_feat = discriminator.score_and_features(soft, generator=rng)
    return textgan_discriminator_loss(real_logit, fake_logit, feature_distance(tc, fake_feat, real_feat),
                                      discriminator.recon(fake_feat), z, mmd_weight=tc.mmd_weight,
                                      recon_weight=tc.recon_weight)


@register("textgan")
class TextGAN:
    label = "adversarial (textgan)"
    reports = ("gen/grad_norm", "disc/loss")  # and gen/mmd or gen/mean (textgan.match)
    reads = ("textgan", "relaxed.d_steps", "relaxed.grad_clip")

    @staticmethod
    def defaults(cfg: Config) -> dict[str, Any]:
        """The authors' latent-code generator, adversarial rate, one D step an iteration, D without
        an L2 penalty, and their optimiser's rescale of every gradient to norm 5."""
        return {"generator.kind": "latent_lstm", "generator.adv_lr": 5e-5, "relaxed.d_steps": 1,
                "discriminator.l2_reg": 0.0, "textgan.grad_rescale": 5.0}
    start = Relaxed.start  # each role gets its copy of the other's network

    def iteration(self, ctx: Context, it: int) -> tuple[dict[str, float], str]:
        tc = ctx.cfg.textgan
        m = alternate(ctx, it, generator_objective, discriminator_objective, tc, rescale=tc.grad_rescale)
        g = m.pop("gen")
        return {f"gen/{tc.match}": g, **m}, f"{tc.match} {g:.4f}  d {m['disc/loss']:.3f}"
