"""The driver: Algorithm 1 of the paper, read top to bottom.

    pretrain G by MLE; pretrain D on real vs generated
    repeat adv_iterations times:
        g_steps × (sample Y ~ G_θ, rewards by Eq. 4 on the rollout pool, update θ by Eq. 8)
        β ← r·β + (1−r)·θ
        d_steps × (fresh negatives, k_epochs of D on real + fake)
        send the new β and φ to the rollout pool; evaluate, log, checkpoint

The same loop drives plain in-process roles (tests, `mode=local`) or Ray actors: it only
sees a `Roles` bundle.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import Config, save_config
from .data import DataError, write_token_file
from .distributed.pool import RemoteRole, RolloutPool, start_actor
from .oracle import SyntheticTask
from .roles import DiscriminatorTrainer, GeneratorLearner
from .runlog import Progress, RunLog, plot_oracle_nll, read_metrics, save_checkpoint


@dataclass
class Roles:
    learner: Any        # GeneratorLearner or a RemoteRole around its actor
    discriminator: Any  # DiscriminatorTrainer or a RemoteRole
    pool: RolloutPool

    def shutdown(self) -> None:
        self.pool.shutdown()


def local_roles(cfg: Config, *, rollout_workers: int = 1) -> Roles:
    seed = cfg.run.seed
    return Roles(GeneratorLearner(cfg, seed), DiscriminatorTrainer(cfg, seed + 10),
                 RolloutPool.local(cfg, seed + 100, rollout_workers))


def ray_roles(cfg: Config, spec, pool_size: int) -> Roles:
    """The learner, the discriminator and `pool_size` rollout workers as Ray actors."""
    seed = cfg.run.seed
    return Roles(RemoteRole(start_actor(GeneratorLearner, spec.learner, cfg, seed)),
                 RemoteRole(start_actor(DiscriminatorTrainer, spec.discriminator, cfg, seed + 10)),
                 RolloutPool.actors(cfg, seed + 100, pool_size, spec.rollout_worker))


@dataclass
class Result:
    run_dir: Path
    summary: dict[str, Any]


def train(cfg: Config, task: SyntheticTask, roles: Roles, run_dir: Path) -> Result:
    """Run the whole schedule of `cfg.train`, writing everything into `run_dir`."""
    tc, rc = cfg.train, cfg.run
    if task.real.shape[0] < max(cfg.generator.batch_size, cfg.discriminator.batch_size):
        raise DataError(f"{task.source}: {task.real.shape[0]} training sequences, fewer than one "
                        f"batch (generator.batch_size={cfg.generator.batch_size}, "
                        f"discriminator.batch_size={cfg.discriminator.batch_size})")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    (run_dir / "data_source.txt").write_text(task.source + "\n")
    log = RunLog(run_dir)
    started = time.perf_counter()
    learner, disc, pool = roles.learner, roles.discriminator, roles.pool
    learner.set_data(task.real)
    disc.set_data(task.real)
    E = tc.pretrain_g_epochs
    last_eval: dict[str, float] = {}

    def evaluate(phase: str, step: int, epoch: int) -> float:
        t0 = time.perf_counter()
        nll = task.oracle.nll(learner.sample(tc.eval_samples))
        last_eval[phase] = nll
        log.log(phase, step, epoch, {"eval/oracle_nll": nll, "time/eval_s": time.perf_counter() - t0})
        return nll

    def checkpoint(phase: str, step: int) -> None:
        state = {"phase": phase, "step": step, "config": cfg.to_dict(),
                 "learner": learner.state_dict(), "discriminator": disc.state_dict()}
        save_checkpoint(run_dir / "checkpoints", f"{phase}_{step:06d}", state, keep=tc.keep_checkpoints)

    # ---- 1. MLE pretraining of G
    nll = evaluate("pretrain_g", 0, 0)  # the untrained generator: the paper's "Random"
    bar = Progress("pretrain G (MLE)", E, enabled=rc.progress)
    for epoch in range(1, E + 1):
        t0 = time.perf_counter()
        loss = learner.pretrain_epoch()
        log.log("pretrain_g", epoch, epoch, {"pretrain/gen_nll": loss, "time/epoch_s": time.perf_counter() - t0})
        if epoch % tc.eval_every == 0 or epoch == E:
            nll = evaluate("pretrain_g", epoch, epoch)
        bar.update(epoch, f"nll {loss:.3f}  oracle {nll:.3f}")
    checkpoint("pretrain_g", E)

    # ---- 2. pretraining of D on real vs generated
    bar = Progress("pretrain D", tc.pretrain_d_rounds, enabled=rc.progress)
    for rnd in range(1, tc.pretrain_d_rounds + 1):
        t0 = time.perf_counter()
        stats = disc.train(learner.sample(tc.num_negatives), tc.pretrain_d_epochs)
        log.log("pretrain_d", rnd, E, {"disc/loss": stats.loss, "disc/acc_real": stats.acc_real,
                                      "disc/acc_fake": stats.acc_fake, "time/d_train_s": time.perf_counter() - t0})
        bar.update(rnd, f"loss {stats.loss:.3f}  acc real {stats.acc_real:.2f} fake {stats.acc_fake:.2f}")
    checkpoint("pretrain_d", tc.pretrain_d_rounds)

    # ---- 3. adversarial training
    learner.sync_rollout_policy()  # β ← θ
    pool.set_weights(learner.rollout_weights(), disc.weights())
    bar = Progress("adversarial", tc.adv_iterations, enabled=rc.progress)
    for it in range(1, tc.adv_iterations + 1):
        t_iter = time.perf_counter()
        times = {"time/sample_s": 0.0, "time/rollout_s": 0.0, "time/g_update_s": 0.0}
        rewards_mean, pg_loss = 0.0, 0.0
        for _ in range(tc.g_steps):
            t0 = time.perf_counter()
            seqs = learner.sample(cfg.generator.batch_size)            # (B, T)
            t1 = time.perf_counter()
            rewards = pool.rewards(seqs)                               # (B, T), Eq. 4
            t2 = time.perf_counter()
            step = learner.pg_step(seqs, rewards)                      # Eq. 8
            t3 = time.perf_counter()
            times["time/sample_s"] += t1 - t0
            times["time/rollout_s"] += t2 - t1
            times["time/g_update_s"] += t3 - t2
            rewards_mean += rewards.mean().item() / tc.g_steps
            pg_loss += step.loss / tc.g_steps
        learner.update_rollout_policy()                                # β ← r·β + (1−r)·θ
        t0 = time.perf_counter()
        d = None
        for _ in range(tc.d_steps):
            d = disc.train(learner.sample(tc.num_negatives), tc.k_epochs)  # Eq. 5
        t_d = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool.set_weights(learner.rollout_weights(), disc.weights())
        metrics = {"gen/pg_loss": pg_loss, "gen/reward_mean": rewards_mean, **times,
                   "time/d_train_s": t_d, "time/broadcast_s": time.perf_counter() - t0,
                   "pool/restarts": float(pool.restarts)}
        if d is not None:
            metrics.update({"disc/loss": d.loss, "disc/acc_real": d.acc_real, "disc/acc_fake": d.acc_fake})
        metrics["time/iteration_s"] = time.perf_counter() - t_iter
        log.log("adversarial", it, E + it, metrics)
        if it % tc.eval_every == 0 or it == tc.adv_iterations:
            nll = evaluate("adversarial", it, E + it)
        if it % tc.checkpoint_every == 0 or it == tc.adv_iterations:
            checkpoint("adversarial", it)
        bar.update(it, f"reward {rewards_mean:.3f}  oracle {nll:.3f}")

    # ---- the run folder's last pieces
    samples = learner.sample(rc.num_samples_saved)
    write_token_file(run_dir / "samples.txt", samples)
    log.close()
    metrics_all = read_metrics(run_dir / "metrics.jsonl")
    plot_oracle_nll(metrics_all, run_dir / "oracle_nll.png", pretrain_epochs=E,
                    title=f"NLL-oracle, {run_dir.name}")
    summary = {"data_source": task.source,
               "oracle_nll_random": metrics_all[0]["eval/oracle_nll"],
               "oracle_nll_after_pretraining": last_eval.get("pretrain_g"),
               "oracle_nll_after_adversarial": last_eval.get("adversarial"),
               "oracle_nll_of_training_data": task.oracle.nll(task.real),
               "rollout_workers": len(pool), "rollout_restarts": pool.restarts,
               "wall_time_s": time.perf_counter() - started}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return Result(run_dir, summary)
