"""LeakGAN (Guo et al., AAAI 2018): long text by leaked discriminator features.

G is models.leakgan.LeakGANPolicy (generator.kind leakgan): a Manager reading D's features of
the sentence so far sets goals that steer a Worker. An iteration, as the reference code's:

1. g_steps × (a batch from G; Monte Carlo rewards at every c-th prefix (rollout.stride = c,
   rollout.num_rollouts completions each) on the rollout pool, whose workers hold G and its
   D snapshot; rescaled across the batch (`rescale`); one step of the Manager and the Worker
   down `leakgan_objective`);
2. d_steps × (fresh negatives, sampled on the pool, and with leakgan.fresh_positives fresh
   positives; k_epochs of D), G's copy of D refreshed after each (the trainer's d_round).

G goes to the pool (one ray.put) before each use: rewards, negatives, evaluation samples.

Pretraining is interleaved (leakgan.pretrain_rounds; the trainer runs it), so the Manager
learns from a D that has seen G's samples.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from ..config import Config
from . import Context, check_finite, register


def rescale(rewards: Tensor, mode: str, delta: float) -> Tensor:
    """LeakGAN's bootstrapped rescaled activation of `rewards` (B, K), each column (a reward
    point) across the batch: σ(δ·(rank/B − 1/2)), rank 1 the lowest reward, B the highest.

    `mode` "reference" ranks as the reference code's `rescale()` does: it keys a dict by the
    reward values and numbers them in the dict's order, never sorting, so under Python 3 a
    value's rank is where it first appears in the batch (under Python 2, hash order): the
    result does not depend on D's scores at all. "none" returns `rewards` as they are."""
    if mode == "none":
        return rewards
    B = rewards.shape[0]
    if mode == "rank":
        ranks = rewards.argsort(dim=0, stable=True).argsort(dim=0, stable=True) + 1.0
    else:
        ranks = torch.empty_like(rewards)
        for k, column in enumerate(rewards.t().tolist()):
            order: dict[float, int] = {}
            for value in column:
                order.setdefault(value, len(order) + 1)
            ranks[:, k] = torch.tensor([order[v] for v in column], dtype=rewards.dtype)
    return torch.sigmoid(delta * (ranks / B - 0.5))


def leakgan_objective(generator, seqs: Tensor, rewards: Tensor, cosine: str) -> Tensor:
    """The Manager's and the Worker's losses for `seqs` (B, T) with rescaled `rewards` (B, T/c):
    −Σ Q_k·cos(f_{c(k+1)} − f_{ck}, g_k) / (B·T/c) for the Manager, and
    −Σ r^I_p·log G(y_p) / (B·T) for the Worker, its intrinsic reward r^I_p the cosine of its
    feature move so far in the block with the block's goal. Each loss reaches only its own
    network. `cosine` "batch_mean" averages each kind of cosine over the batch first (the
    reference code's tf.losses.cosine_distance)."""
    terms = generator.leak_terms(seqs)
    manager_cos, worker_reward = terms.manager_cos, terms.worker_reward
    if cosine == "batch_mean":
        manager_cos, worker_reward = manager_cos.mean(), worker_reward.mean()
    manager = -(rewards * manager_cos).sum() / rewards.numel()
    mask = generator.mask(seqs)
    worker_terms = worker_reward * terms.log_probs
    worker = -(worker_terms.sum() / seqs.numel() if mask is None else (worker_terms * mask).sum() / mask.sum())
    return manager + worker


@register("leakgan")
class LeakGAN:
    label = "adversarial (leakgan)"
    reports = ("gen/pg_loss", "gen/reward_mean", "gen/d_score_mean", "disc/loss", "disc/acc_real", "disc/acc_fake")
    reads = ("leakgan", "rollout")  # of config.METHOD_SECTIONS and METHOD_KEYS
    interleaved_pretraining = True  # the trainer alternates D rounds and MLE epochs

    @staticmethod
    def defaults(cfg: Config) -> dict[str, Any]:
        """The reference's settings (configs/leakgan_oracle.yaml), for the keys a run does not set:
        its generator, rates, D without dropout or L2 penalty (its dis_l2_reg_lambda never reaches
        the D), 4 rollouts at every step_size-th prefix with G itself (no delayed policy), and the
        most pretraining rounds, up to the reference's 10, that divide both pretraining counts."""
        tc = cfg.train
        rounds = max(r for r in range(1, 11) if tc.pretrain_g_epochs % r == 0 and tc.pretrain_d_rounds % r == 0)
        return {"generator.kind": "leakgan", "generator.lr": 0.0015, "generator.adv_lr": 0.0015,
                "discriminator.dropout": 0.0, "discriminator.l2_reg": 0.0, "discriminator.lr": 5e-5,
                "rollout.num_rollouts": 4, "rollout.stride": cfg.leakgan.step_size, "rollout.update_rate": 0.0,
                "leakgan.pretrain_rounds": rounds}

    def start(self, ctx: Context, *, fresh: bool) -> None:
        """Nothing: the rollout workers are given G_θ (with its D copy, which they also score
        with) before each use. The reference rolls out with G itself: no delayed policy."""

    def iteration(self, ctx: Context, it: int) -> tuple[dict[str, float], str]:
        cfg, tc, lc = ctx.cfg, ctx.cfg.train, ctx.cfg.leakgan
        learner, pool = ctx.learner, ctx.pool
        c, T = lc.step_size, cfg.data.seq_len
        ends = [min(start + c, T) - 1 for start in range(0, T, c)]  # each block's last token: its reward
        times = dict.fromkeys(("time/sample_s", "time/rollout_s", "time/g_update_s"), 0.0)
        reward_mean = score_mean = loss = 0.0
        for _ in range(tc.g_steps):
            t0 = time.perf_counter()
            seqs = learner.sample(cfg.generator.batch_size, update=True)            # (B, T)
            t1 = time.perf_counter()
            pool.set_weights(learner.weights(), None)  # θ and its D copy: what rolls out, and scores
            scores = pool.rewards(seqs)[:, ends]                                   # (B, T/c)
            check_finite("adversarial", it, rewards=scores)
            rewards = rescale(scores, lc.rescale, lc.rescale_delta) / cfg.rollout.num_rollouts
            t2 = time.perf_counter()
            step = learner.update(leakgan_objective, seqs, rewards, lc.cosine)
            check_finite("adversarial", it, **{"LeakGAN loss": step.loss, "generator gradient norm": step.grad_norm})
            t3 = time.perf_counter()
            for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                times[key] += dt
            score_mean += scores.mean().item() / tc.g_steps
            reward_mean += rewards.mean().item() / tc.g_steps
            loss += step.loss / tc.g_steps
        d, t_neg, t_d = None, 0.0, 0.0
        for _ in range(tc.d_steps):
            t0 = time.perf_counter()
            fake = ctx.generator_samples(tc.num_negatives)  # on the pool: through D at every token
            t1 = time.perf_counter()
            d = ctx.d_round(tc.k_epochs, fake=fake)  # G's copy of D refreshed after it
            check_finite("adversarial", it, **{"discriminator loss": d.loss})
            t_neg, t_d = t_neg + t1 - t0, t_d + time.perf_counter() - t1
        metrics = {"gen/pg_loss": loss, "gen/reward_mean": reward_mean, "gen/d_score_mean": score_mean,
                   **times, "time/negatives_s": t_neg, "time/d_train_s": t_d,
                   "pool/restarts": float(ctx.rollout_restarts)}
        if d is not None:
            metrics.update({"disc/loss": d.loss, "disc/acc_real": d.acc_real, "disc/acc_fake": d.acc_fake})
        return metrics, f"D {score_mean:.2g}"
