"""The relaxed text GANs: no rollouts; G's samples reach D as Gumbel-softmax soft tokens, so
D's loss is differentiable in θ and G steps down it directly.

- `relgan` (Nie, Narodytska, Patel, ICLR 2019): the relativistic standard loss, the inverse
  temperature β_n = β_max^(n/N), the next input the sampled token's embedding (their code);
  with generator.kind relational_memory and discriminator.kind relgan it is RelGAN's model
  (configs/relgan_oracle.yaml).
- `gsgan` (Kusner & Hernández-Lobato 2016): the standard (non-saturating) GAN loss, the soft
  token fed back as the next input, τ = 1/β annealed from 5 toward 0; SeqGAN's LSTM and
  CNN. No authors' code exists; Texygen's "gsgan" adds the noise to the hidden state with τ
  fixed at 10 and no pretraining, which is not the paper, and not this.

An iteration: train.g_steps G steps, then relaxed.d_steps D steps, each on a fresh real
batch (`ctx.real_batch`) and fresh soft fakes. Each role holds a frozen copy of the other's
network, refreshed once an iteration: the learner a copy of D (`set_critic`) to pass gradients
through, the discriminator a copy of G (`set_opponent`) to draw its fakes from. Gumbel noise
and dropout draw from the roles' checkpointed random streams, so a resumed run goes on exactly.

With relaxed.feed soft the tokens G is trained on are samples of a soft-fed sampler, not of the
policy evaluation samples: each evaluation also logs the trained sampler's NLL-oracle
(`sampler_oracle_nll`).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from ..config import Config
from ..losses import relaxed_discriminator_loss, relaxed_generator_loss
from . import Context, check_finite, register


def inverse_temperature(cfg: Config, n: int, start: float) -> float:
    """β for iteration n = 0, 1, ... under relaxed.schedule (β_0 = `start`, reaching
    relaxed.temperature_max at n = N: relaxed.temperature_steps, by default the last iteration)."""
    rc = cfg.relaxed
    N = rc.temperature_steps or cfg.train.adv_iterations - 1
    top = rc.temperature_max
    if rc.schedule == "constant" or N < 1:  # N 0: a single iteration, which is the last
        return top
    if rc.schedule == "lin":  # RelGAN's get_fixed_temperature, 'lin'
        return start + (top - start) * min(n, N - 1) / (N - 1) if N > 1 else top
    return start * (top / start) ** (min(n, N) / N)  # 'exp': β_max^(n/N) when β_0 = 1


def generator_objective(generator, critic, rng: torch.Generator, real: Tensor, beta: float, loss: str,
                        feed: str) -> Tensor:
    """G's adversarial loss for one batch: fresh soft fakes against `real`, through D's copy."""
    _, soft = generator.sample_relaxed(len(real), beta, feed=feed, generator=rng)
    return relaxed_generator_loss(loss, critic.score(real, generator=rng), critic.score(soft, generator=rng))


def discriminator_objective(discriminator, generator, rng: torch.Generator, real: Tensor, beta: float,
                            loss: str, feed: str) -> Tensor:
    """D's loss for one batch: `real` against fresh soft fakes from G's copy (no gradient to G)."""
    with torch.no_grad():
        _, soft = generator.sample_relaxed(len(real), beta, feed=feed, generator=rng)
    return relaxed_discriminator_loss(loss, discriminator.score(real, generator=rng),
                                      discriminator.score(soft, generator=rng))


class Relaxed:
    """One relaxed GAN; subclasses name their defaults for relaxed.loss, feed, temperature_start."""

    relaxed = True  # config.validate: may train discriminator.kind relgan
    reports = ("gen/adv_loss", "gen/grad_norm", "disc/loss", "relaxed/inverse_temperature")
    reads = ("relaxed",)  # config.validate refuses textgan.* keys
    label: str
    loss: str
    feed: str
    temperature_start: float

    def settings(self, cfg: Config) -> tuple[str, str, float]:
        rc = cfg.relaxed
        return rc.loss or self.loss, rc.feed or self.feed, rc.temperature_start or self.temperature_start

    def start(self, ctx: Context, *, fresh: bool) -> None:
        """Each role gets its copy of the other's network (also after a resume)."""
        ctx.learner.set_critic(ctx.disc.weights())
        ctx.disc.set_opponent(ctx.learner.weights())

    def evaluate(self, ctx: Context, it: int, samples: Tensor) -> dict[str, float]:
        """Beside the trainer's evaluation of adversarial iteration `it`: the trained sampler's NLL-oracle."""
        if ctx.phase != "adversarial":
            return {}
        _, feed, start = self.settings(ctx.cfg)
        return sampler_oracle_nll(ctx, it, feed, inverse_temperature(ctx.cfg, it - 1, start))

    def iteration(self, ctx: Context, it: int) -> tuple[dict[str, float], str]:
        loss, feed, start = self.settings(ctx.cfg)
        beta = inverse_temperature(ctx.cfg, it - 1, start)
        m = alternate(ctx, it, generator_objective, discriminator_objective, beta, loss, feed)
        return ({"gen/adv_loss": m["gen"], "gen/grad_norm": m["gen/grad_norm"], "disc/loss": m["disc/loss"],
                 "relaxed/inverse_temperature": beta, "time/g_update_s": m["time/g_update_s"],
                 "time/d_train_s": m["time/d_train_s"]},
                f"β {beta:.3g}  g {m['gen']:.3f}  d {m['disc/loss']:.3f}")


def sampler_oracle_nll(ctx: Context, it: int, feed: str, beta: float) -> dict[str, float]:
    """eval/sampler_oracle_nll: the oracle's mean per-token NLL of train.eval_samples token
    sequences of the sampler G is trained through (this `feed`, β of iteration `it`), beside
    eval/oracle_nll of the policy's own samples. With feed soft they differ: the tokens G's
    updates see are not samples of the policy evaluated. Synthetic task only (an oracle to ask)."""
    scorer = getattr(ctx.task, "scorer", None)
    if scorer is None:
        return {}
    seqs = ctx.learner.sample_relaxed(ctx.cfg.train.eval_samples, beta, feed=feed, seed=ctx.cfg.run.seed + it)
    return {"eval/sampler_oracle_nll": scorer.sequence_nll(seqs.to(scorer.W.device)).mean().item()}


def alternate(ctx: Context, it: int, g_objective, d_objective, *args, rescale: float = 0.0) -> dict[str, float]:
    """One iteration of a GAN whose roles step through each other's copies: train.g_steps G
    steps down `g_objective`, G's copy to D, relaxed.d_steps D steps down `d_objective`, D's copy
    to G; each step on a fresh real batch, `args` passed on; `rescale` > 0: every step's gradient
    rescaled to that global norm instead of clipped (TextGAN's authors). The mean losses ("gen",
    "disc/loss"), G's gradient norm (before clipping or rescaling) and the two phases' seconds."""
    cfg, learner, disc = ctx.cfg, ctx.learner, ctx.disc
    B = cfg.generator.batch_size
    t0 = time.perf_counter()
    g_loss = g_norm = 0.0
    for _ in range(cfg.train.g_steps):
        step = learner.adversarial_step(g_objective, ctx.real_batch(B), *args, rescale=rescale)
        check_finite("adversarial", it, **{"generator loss": step.loss, "generator gradient norm": step.grad_norm})
        g_loss += step.loss / cfg.train.g_steps
        g_norm += step.grad_norm / cfg.train.g_steps
    disc.set_opponent(learner.weights())
    t1 = time.perf_counter()
    d_loss = 0.0
    for _ in range(cfg.relaxed.d_steps):
        value = disc.adversarial_step(d_objective, ctx.real_batch(B), *args, rescale=rescale)
        check_finite("adversarial", it, **{"discriminator loss": value})
        d_loss += value / cfg.relaxed.d_steps
    learner.set_critic(disc.weights())
    return {"gen": g_loss, "gen/grad_norm": g_norm, "disc/loss": d_loss,
            "time/g_update_s": t1 - t0, "time/d_train_s": time.perf_counter() - t1}


@register("relgan")
class RelGAN(Relaxed):
    label = "adversarial (relgan)"
    loss, feed, temperature_start = "rsgan", "hard", 1.0

    @staticmethod
    def defaults(cfg: Config) -> dict[str, Any]:
        """RelGAN's own models (relational memory, its multi-representation D, which pretrains
        nothing and has no L2 penalty) and its adversarial rate, for the keys a run does not set;
        generator.kind lstm discriminator.kind cnn train.pretrain_d_rounds=3 gives SeqGAN's instead."""
        return {"generator.kind": "relational_memory", "discriminator.kind": "relgan",
                "discriminator.l2_reg": 0.0, "train.pretrain_d_rounds": 0, "generator.adv_lr": 1e-4}


@register("gsgan")
class GSGAN(Relaxed):
    label = "adversarial (gsgan)"
    loss, feed, temperature_start = "standard", "soft", 0.2

    @staticmethod
    def defaults(cfg: Config) -> dict[str, Any]:
        """SeqGAN's LSTM and CNN (the paper's own models), stepped at a relaxed GAN's rate."""
        return {"generator.adv_lr": 1e-4}
