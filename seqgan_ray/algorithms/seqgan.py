"""SeqGAN (Yu et al. 2017), Algorithm 1's adversarial loop: policy gradient with Monte Carlo
rollout rewards, a delayed rollout policy, then D training. With rollout.estimator critic, a
value net on the learner weighs each token instead of the rollouts (roles.critic_pg_step)."""

from __future__ import annotations

import time

from . import Context, check_finite, register


@register("seqgan")
class SeqGAN:
    label = "adversarial"
    reports = ("gen/pg_loss", "gen/reward_mean", "disc/loss", "disc/acc_real", "disc/acc_fake")
    reads = ("rollout",)  # of config.METHOD_SECTIONS and METHOD_KEYS: Eq. 4's settings

    def start(self, ctx: Context, *, fresh: bool) -> None:
        """β ← θ when the phase begins; the rollout workers get β (and φ, when the reward is D's)."""
        if fresh:
            ctx.learner.sync_rollout_policy()
        if ctx.cfg.rollout.estimator == "critic":  # the learner scores with its copy of D
            ctx.learner.set_critic(ctx.disc.weights())
            return
        ctx.pool.set_weights(ctx.learner.rollout_weights(),
                             ctx.disc.weights() if ctx.reward_uses_discriminator else None)

    def iteration(self, ctx: Context, it: int) -> tuple[dict[str, float], str]:
        """g_steps × (sample, Eq. 4 rewards, Eq. 8); β update; d_steps × D training (Eq. 5)
        when the reward is D's; then the new β and φ to the rollout pool."""
        cfg, tc = ctx.cfg, ctx.cfg.train
        learner, disc, pool = ctx.learner, ctx.disc, ctx.pool
        times = dict.fromkeys(("time/sample_s", "time/rollout_s", "time/g_update_s"), 0.0)
        rewards_mean = pg_loss = 0.0
        if cfg.rollout.estimator == "critic":
            return self.critic_iteration(ctx, it)
        for _ in range(tc.g_steps):
            t0 = time.perf_counter()
            seqs = learner.sample(cfg.generator.batch_size)      # (B, T)
            t1 = time.perf_counter()
            rewards = pool.rewards(seqs)                         # (B, T), Eq. 4
            check_finite("adversarial", it, rewards=rewards)
            t2 = time.perf_counter()
            step = learner.pg_step(seqs, rewards)                # Eq. 8
            check_finite("adversarial", it, **{"policy-gradient loss": step.loss,
                                               "generator gradient norm": step.grad_norm})
            t3 = time.perf_counter()
            for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                times[key] += dt
            rewards_mean += rewards.mean().item() / tc.g_steps
            pg_loss += step.loss / tc.g_steps
        learner.update_rollout_policy()                          # β ← r·β + (1−r)·θ
        t0 = time.perf_counter()
        d = None
        for _ in range(tc.d_steps if ctx.reward_uses_discriminator else 0):
            d = ctx.d_round(tc.k_epochs)                         # Eq. 5
            check_finite("adversarial", it, **{"discriminator loss": d.loss})
        t_d = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool.set_weights(learner.rollout_weights(), disc.weights() if d is not None else None)
        metrics = {"gen/pg_loss": pg_loss, "gen/reward_mean": rewards_mean, **times,
                   "time/d_train_s": t_d, "time/broadcast_s": time.perf_counter() - t0,
                   "pool/restarts": float(ctx.rollout_restarts)}
        if d is not None:
            metrics.update({"disc/loss": d.loss, "disc/acc_real": d.acc_real, "disc/acc_fake": d.acc_fake})
        return metrics, f"reward {rewards_mean:.2g}"

    def critic_iteration(self, ctx: Context, it: int) -> tuple[dict[str, float], str]:
        """rollout.estimator critic: g_steps × (sample, Eq. 8 weighed by the value net's
        advantages, a value-net step); d_steps × D training; the learner's copy of D refreshed."""
        cfg, tc = ctx.cfg, ctx.cfg.train
        totals: dict[str, float] = {}
        t0 = time.perf_counter()
        for _ in range(tc.g_steps):
            step = ctx.learner.critic_pg_step(ctx.learner.sample(cfg.generator.batch_size))
            check_finite("adversarial", it, **{"policy-gradient loss": step.loss,
                                               "generator gradient norm": step.grad_norm})
            for key, value in {"gen/pg_loss": step.loss, **step.stats}.items():
                totals[key] = totals.get(key, 0.0) + value / tc.g_steps
        t1 = time.perf_counter()
        d = None
        for _ in range(tc.d_steps):
            d = ctx.d_round(tc.k_epochs)
            check_finite("adversarial", it, **{"discriminator loss": d.loss})
        if d is not None:
            ctx.learner.set_critic(ctx.disc.weights())
            totals.update({"disc/loss": d.loss, "disc/acc_real": d.acc_real, "disc/acc_fake": d.acc_fake})
        totals.update({"time/g_update_s": t1 - t0, "time/d_train_s": time.perf_counter() - t1})
        return totals, f"D {totals['gen/d_score_mean']:.2g}"
