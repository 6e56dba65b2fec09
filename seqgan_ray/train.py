"""The driver: Algorithm 1 of the paper, read top to bottom in `Trainer.run`.

    pretrain G by MLE; pretrain D on real vs generated
    repeat adv_iterations times:
        g_steps × (sample Y ~ G_θ, rewards by Eq. 4 on the rollout pool, update θ by Eq. 8)
        β ← r·β + (1−r)·θ
        d_steps × (fresh negatives, k_epochs of D on real + fake)
        send the new β and φ to the rollout pool; evaluate, log, checkpoint

The same loop drives plain in-process roles (tests, `--no-ray`) or Ray actors: it only sees
a `Roles` bundle. Every checkpoint holds the position in the schedule, so a run resumes
where it stopped; in-process, a resumed run writes the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import FORMAT, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import Config, ConfigError, save_config
from .data import DataError
from .distributed.cluster import ActorResources
from .distributed.pool import RemoteRole, RolloutPool, start_actor
from .kernels import slow_bfloat16_note
from .oracle import SyntheticTask
from .roles import DiscriminatorTrainer, GeneratorLearner
from .scores import load_reward
from .runlog import Progress, RunLog, plot_metric, read_metrics
from .tasks import TextTask

PHASES = ("pretrain_g", "pretrain_d", "adversarial")


class NumericalError(RuntimeError):
    """NaN or inf in a loss, a reward or a weight; the message names the phase, step and tensor."""


class Interrupted(RuntimeError):
    """SIGINT or SIGTERM: a checkpoint was written and the run can be resumed."""


@dataclass
class Roles:
    learner: Any        # GeneratorLearner or a RemoteRole around its actor
    discriminator: Any  # DiscriminatorTrainer or a RemoteRole
    pool: RolloutPool
    pretrain_worker: ActorResources | None = None  # Ray Train's MLE workers; None: no Ray

    def devices(self) -> dict[str, Any]:
        """Where each role computes: {"learner": "cuda", "discriminator": ..., "rollout": [...]}."""
        return {"learner": self.learner.device_name(), "discriminator": self.discriminator.device_name(),
                "rollout": self.pool.devices()}

    def shutdown(self) -> None:
        self.pool.shutdown()
        for role in (self.learner, self.discriminator):
            if isinstance(role, RemoteRole):
                role.kill()


def local_roles(cfg: Config, *, rollout_workers: int = 1) -> Roles:
    seed = cfg.run.seed
    return Roles(GeneratorLearner(cfg, seed), DiscriminatorTrainer(cfg, seed + 10),
                 RolloutPool.local(cfg, seed + 100, rollout_workers))


def ray_roles(cfg: Config, spec, pool_size: int, *, worker_cls: type | None = None,
              learner_cls: type = GeneratorLearner) -> Roles:
    """The learner, the discriminator and `pool_size` rollout workers as Ray actors."""
    seed = cfg.run.seed
    return Roles(RemoteRole(start_actor(learner_cls, spec.learner, cfg, seed)),
                 RemoteRole(start_actor(DiscriminatorTrainer, spec.discriminator, cfg, seed + 10)),
                 RolloutPool.actors(cfg, seed + 100, pool_size, spec.rollout_worker, worker_cls=worker_cls),
                 pretrain_worker=spec.pretrain_worker)


@dataclass
class Result:
    run_dir: Path
    summary: dict[str, Any]


@dataclass
class Carry:
    """What the attempts of one `train_with_recovery` call hand on to each other, so that the
    run's totals count them all: where this process's wall time began, the run's wall time
    before this process (from the checkpoint it resumed), and the rollout actor restarts."""

    started: float | None = None  # time.perf_counter() when the first attempt started training
    elapsed_before: float = 0.0
    restarts: int = 0


def describe_devices(devices: dict[str, Any]) -> str:
    """"learner cuda, discriminator cuda, rollout actors cuda x 4" from `Roles.devices()`."""
    rollout = ", ".join(f"{d} x {devices['rollout'].count(d)}" for d in sorted(set(devices["rollout"])))
    return f"learner {devices['learner']}, discriminator {devices['discriminator']}, rollout actors {rollout}"


def _check_finite(phase: str, step: int, **values: float | torch.Tensor | None) -> None:
    for name, value in values.items():
        if value is None:
            continue
        ok = bool(torch.isfinite(value).all()) if isinstance(value, torch.Tensor) else math.isfinite(value)
        if not ok:
            raise NumericalError(f"{phase} step {step}: {name} is not finite (NaN or inf); "
                                 f"the last good checkpoint is kept")


class Trainer:
    def __init__(self, cfg: Config, task: SyntheticTask | TextTask, roles: Roles, run_dir: Path, *,
                 on_iteration: Callable[["Trainer", dict[str, float]], None] | None = None,
                 carry: Carry | None = None):
        if task.real.shape[0] < max(cfg.generator.batch_size, cfg.discriminator.batch_size):
            raise DataError(f"{task.source}: {task.real.shape[0]} training sequences, fewer than one "
                            f"batch (generator.batch_size={cfg.generator.batch_size}, "
                            f"discriminator.batch_size={cfg.discriminator.batch_size})")
        if cfg.rollout.reward != "discriminator":
            load_reward(cfg.rollout.reward)  # a bad module:Class fails here, not in an actor
        self.cfg, self.task, self.roles, self.run_dir = cfg, task, roles, run_dir
        self.learner, self.disc, self.pool = roles.learner, roles.discriminator, roles.pool
        self.phase, self.step = PHASES[0], -1  # -1: not started; else steps done in `phase`
        self.last_eval: dict[str, dict[str, float]] = {}  # phase -> its latest evaluation
        self.elapsed = 0.0  # wall time of earlier sessions of this run
        self.restarts_before = 0  # rollout actor restarts in earlier sessions and attempts
        self.carry = carry or Carry()
        self.stop_requested = False
        self.on_iteration = on_iteration  # e.g. Ray Tune's report, after every adversarial iteration

    # ------------------------------------------------------------------ the schedule

    def run(self, *, resume: bool = False, start_from: Path | None = None) -> Result:
        """Train from scratch, from this run's newest checkpoint (`resume`), or from another
        run's checkpoint file (`start_from`, e.g. a pretrained one shared by a sweep)."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self._restore(latest_checkpoint(self.run_dir / "checkpoints"), truncate_metrics=True)
        else:
            save_config(cfg, self.run_dir / "config.yaml")
            (self.run_dir / "data_source.txt").write_text(self.task.source + "\n")
            if start_from is not None:
                self._restore(start_from, truncate_metrics=False)
        self.log = RunLog(self.run_dir)
        self.devices = self.roles.devices()
        if cfg.run.progress:
            print(f"devices: {describe_devices(self.devices)}", file=sys.stderr, flush=True)
        if cfg.discriminator.precision == "bfloat16" and self.devices["discriminator"] == "cpu":
            note = slow_bfloat16_note()
            if note:
                print(note, file=sys.stderr, flush=True)
        carry = self.carry
        if carry.started is None:  # this process's first attempt at the run
            carry.started, carry.elapsed_before = time.perf_counter(), self.elapsed
        self.started, self.elapsed = carry.started, carry.elapsed_before
        self.restarts_before = max(self.restarts_before, carry.restarts)
        self.last_checkpoint = time.perf_counter()
        self.learner.set_data(self.task.real)
        self.disc.set_data(self.task.real)
        if not self._uses_discriminator:
            self.pool.set_data(self.task.real)
        try:
            with _stop_on_signals(self):
                if self._todo("pretrain_g"):
                    self.pretrain_generator()
                if self._todo("pretrain_d"):
                    self.pretrain_discriminator()
                if self._todo("adversarial"):
                    self.adversarial()
            return self._finish()
        finally:
            self.log.close()

    def pretrain_generator(self) -> None:
        """MLE on the training data, with NLL-oracle every eval_every epochs."""
        E, tc = self.cfg.train.pretrain_g_epochs, self.cfg.train
        if self.step < 0:
            self.evaluate(0)  # the untrained generator: the paper's "Random"
            self.step = 0
        if tc.pretrain_workers:
            return self.pretrain_generator_on_ray_train()
        bar = self._progress("pretrain G (MLE)", E)
        for epoch in range(self.step + 1, E + 1):
            t0 = time.perf_counter()
            loss = self.learner.pretrain_epoch()
            _check_finite("pretrain_g", epoch, **{"MLE loss": loss})
            self.log.log("pretrain_g", epoch, epoch, {"pretrain/gen_nll": loss,
                                                      "time/epoch_s": time.perf_counter() - t0})
            if epoch % tc.eval_every == 0 or epoch == E:
                self.evaluate(epoch)
            bar.update(epoch, f"nll {loss:.3f}  {self._latest()}")
            self._end_step(epoch, last=epoch == E)
        self._next_phase()

    def pretrain_generator_on_ray_train(self) -> None:
        """MLE on Ray Train's data-parallel workers, streaming the corpus's Parquet shards;
        evaluated at the end. A resumed run starts this phase again from its beginning."""
        from .distributed.pretrain import pretrain_on_ray_train

        if self.roles.pretrain_worker is None:
            raise ConfigError("train.pretrain_workers needs Ray (drop --no-ray, or set it to 0)")
        E, workers = self.cfg.train.pretrain_g_epochs, self.cfg.train.pretrain_workers
        print(f"pretrain G (MLE) on Ray Train: {workers} workers, {E} epochs", file=sys.stderr)
        result = pretrain_on_ray_train(self.cfg, self.task.folder, num_workers=workers,
                                       worker=self.roles.pretrain_worker, generator_state=self.learner.weights(),
                                       storage=self.run_dir / "ray_train")
        self.learner.load_pretrained(result.generator, result.mle_opt)
        for epoch, (loss, seconds) in enumerate(zip(result.epoch_losses, result.epoch_seconds), 1):
            _check_finite("pretrain_g", epoch, **{"MLE loss": loss})
            self.log.log("pretrain_g", epoch, epoch, {"pretrain/gen_nll": loss, "time/epoch_s": seconds})
        self.evaluate(E)
        self._end_step(E, last=True)
        self._next_phase()

    def pretrain_discriminator(self) -> None:
        """Rounds of fresh negatives, then pretrain_d_epochs of D on real + fake."""
        tc, E = self.cfg.train, self.cfg.train.pretrain_g_epochs
        bar = self._progress("pretrain D", tc.pretrain_d_rounds)
        for rnd in range(max(self.step, 0) + 1, tc.pretrain_d_rounds + 1):
            t0 = time.perf_counter()
            stats = self.disc.train(self.learner.sample(tc.num_negatives), tc.pretrain_d_epochs)
            _check_finite("pretrain_d", rnd, **{"discriminator loss": stats.loss})
            self.log.log("pretrain_d", rnd, E, {"disc/loss": stats.loss, "disc/acc_real": stats.acc_real,
                                                "disc/acc_fake": stats.acc_fake,
                                                "time/d_train_s": time.perf_counter() - t0})
            bar.update(rnd, f"loss {stats.loss:.3f}  acc real {stats.acc_real:.2f} fake {stats.acc_fake:.2f}")
            self._end_step(rnd, last=rnd == tc.pretrain_d_rounds)
        self._next_phase()

    def adversarial(self) -> None:
        """Algorithm 1's loop (train.method seqgan): policy gradient with rollout rewards, then
        D training. The baselines' iterations (mle, scheduled_sampling) are MLE epochs instead."""
        tc = self.cfg.train
        iteration = self._policy_gradient_iteration if tc.method == "seqgan" else self._mle_iteration
        if tc.method == "seqgan":
            if self.step <= 0:
                self.learner.sync_rollout_policy()  # β ← θ
            self.pool.set_weights(self.learner.rollout_weights(),
                                  self.disc.weights() if self._uses_discriminator else None)
        self.step = max(self.step, 0)
        bar = self._progress(f"adversarial ({tc.method})" if tc.method != "seqgan" else "adversarial",
                             tc.adv_iterations)
        for it in range(self.step + 1, tc.adv_iterations + 1):
            t_iter = time.perf_counter()
            metrics, note = iteration(it)
            metrics["time/iteration_s"] = time.perf_counter() - t_iter
            self.log.log("adversarial", it, tc.pretrain_g_epochs + it, metrics)
            if it % tc.eval_every == 0 or it == tc.adv_iterations:
                metrics.update(self.evaluate(it))
            bar.update(it, f"{note}  {self._latest()}")
            if self.on_iteration is not None:
                self.step = it
                self.on_iteration(self, metrics)
            self._end_step(it, last=it == tc.adv_iterations)
        self._next_phase()

    @property
    def _uses_discriminator(self) -> bool:
        return self.cfg.rollout.reward == "discriminator"

    def _policy_gradient_iteration(self, it: int) -> tuple[dict[str, float], str]:
        """g_steps × (sample, Eq. 4 rewards, Eq. 8); β update; d_steps × D training (Eq. 5)
        when the reward is D's; then the new β and φ to the rollout pool."""
        cfg, tc = self.cfg, self.cfg.train
        learner, disc, pool = self.learner, self.disc, self.pool
        times = dict.fromkeys(("time/sample_s", "time/rollout_s", "time/g_update_s"), 0.0)
        rewards_mean = pg_loss = 0.0
        for _ in range(tc.g_steps):
            t0 = time.perf_counter()
            seqs = learner.sample(cfg.generator.batch_size)      # (B, T)
            t1 = time.perf_counter()
            rewards = pool.rewards(seqs)                         # (B, T), Eq. 4
            _check_finite("adversarial", it, rewards=rewards)
            t2 = time.perf_counter()
            step = learner.pg_step(seqs, rewards)                # Eq. 8
            _check_finite("adversarial", it, **{"policy-gradient loss": step.loss,
                                                "generator gradient norm": step.grad_norm})
            t3 = time.perf_counter()
            for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                times[key] += dt
            rewards_mean += rewards.mean().item() / tc.g_steps
            pg_loss += step.loss / tc.g_steps
        learner.update_rollout_policy()                          # β ← r·β + (1−r)·θ
        t0 = time.perf_counter()
        d = None
        for _ in range(tc.d_steps if self._uses_discriminator else 0):
            d = disc.train(learner.sample(tc.num_negatives), tc.k_epochs)  # Eq. 5
            _check_finite("adversarial", it, **{"discriminator loss": d.loss})
        t_d = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool.set_weights(learner.rollout_weights(), disc.weights() if d is not None else None)
        metrics = {"gen/pg_loss": pg_loss, "gen/reward_mean": rewards_mean, **times,
                   "time/d_train_s": t_d, "time/broadcast_s": time.perf_counter() - t0,
                   "pool/restarts": float(self.rollout_restarts)}
        if d is not None:
            metrics.update({"disc/loss": d.loss, "disc/acc_real": d.acc_real, "disc/acc_fake": d.acc_fake})
        return metrics, f"reward {rewards_mean:.2g}"

    def _mle_iteration(self, it: int) -> tuple[dict[str, float], str]:
        """One more MLE epoch (method mle), or one of scheduled sampling, whose chance of
        feeding the model's own sample rises by train.sampling_step an epoch."""
        tc = self.cfg.train
        prob = min(1.0, tc.sampling_step * it) if tc.method == "scheduled_sampling" else 0.0
        loss = self.learner.pretrain_epoch(prob)
        _check_finite("adversarial", it, **{"MLE loss": loss})
        return {"gen/mle_nll": loss, "gen/sampling_prob": prob}, f"nll {loss:.3f}"

    # ------------------------------------------------------------------ pieces

    def evaluate(self, step: int) -> dict[str, float]:
        """The task's metrics of eval_samples generator samples: NLL-oracle for the synthetic
        task; NLL-test, BLEU and Self-BLEU for text."""
        t0 = time.perf_counter()
        metrics = self.task.evaluate(self.learner.sample(self.cfg.train.eval_samples), self.learner.nll)
        _check_finite(self.phase, step, **{self.task.metric: metrics[self.task.metric]})
        self.last_eval[self.phase] = metrics
        epoch = step + (self.cfg.train.pretrain_g_epochs if self.phase == "adversarial" else 0)
        self.log.log(self.phase, step, epoch, {**metrics, "time/eval_s": time.perf_counter() - t0})
        return metrics

    def _latest(self) -> str:
        """The latest value of the task's metric, for progress lines."""
        latest = self.last_eval.get(self.phase, self.last_eval.get("pretrain_g", {}))
        name = self.task.metric.removeprefix("eval/")
        return f"{name} {latest.get(self.task.metric, float('nan')):.3f}"

    def _todo(self, phase: str) -> bool:
        return PHASES.index(phase) >= PHASES.index(self.phase) if self.phase in PHASES else False

    def _next_phase(self) -> None:
        i = PHASES.index(self.phase)
        self.phase, self.step = (PHASES[i + 1], -1) if i + 1 < len(PHASES) else ("done", 0)

    def _progress(self, label: str, total: int) -> Progress:
        return Progress(label, total, enabled=self.cfg.run.progress, start=max(self.step, 0))

    @property
    def rollout_restarts(self) -> int:
        """Rollout actor restarts over the whole run: earlier sessions and attempts, and this one."""
        return self.restarts_before + self.pool.restarts

    def _end_step(self, step: int, *, last: bool) -> None:
        """After a step: checkpoint every checkpoint_every steps, once checkpoint_every_s have
        passed since the last one, at a phase's end, or on a signal."""
        self.step = step
        tc = self.cfg.train
        overdue = 0 < tc.checkpoint_every_s <= time.perf_counter() - self.last_checkpoint
        if last or step % tc.checkpoint_every == 0 or overdue or self.stop_requested:
            self.checkpoint()
        if self.stop_requested:
            raise Interrupted(f"stopped at {self.phase} step {step}; checkpoint written")

    def _state(self) -> dict[str, Any]:
        return {"format": FORMAT, "phase": self.phase, "step": self.step, "config": self.cfg.to_dict(),
                "learner": self.learner.state_dict(), "discriminator": self.disc.state_dict(),
                "rollout_rng": self.pool.rng_states(), "last_eval": dict(self.last_eval),
                "metrics_lines": self.log.lines, "rollout_restarts": self.rollout_restarts,
                "elapsed_s": self.elapsed + time.perf_counter() - self.started}

    def checkpoint(self) -> Path:
        path = save_checkpoint(self.run_dir / "checkpoints", f"{self.phase}_{self.step:06d}", self._state(),
                               keep=self.cfg.train.keep_checkpoints)
        self.last_checkpoint = time.perf_counter()
        return path

    def write_state(self, path: Path) -> None:
        """A checkpoint at `path` (for Ray Tune's own checkpoints)."""
        torch.save(self._state(), path)

    def _restore(self, path: Path, *, truncate_metrics: bool) -> None:
        state = load_checkpoint(path, self.cfg)
        self.learner.load_state_dict(state["learner"])
        self.disc.load_state_dict(state["discriminator"])
        self.pool.set_rng_states(state["rollout_rng"])
        self.phase, self.step = state["phase"], state["step"]
        self.last_eval = dict(state["last_eval"])
        if truncate_metrics:  # resuming this run (not starting another from its checkpoint)
            self.elapsed = state["elapsed_s"]
            self.restarts_before = state.get("rollout_restarts", 0)  # 0 in checkpoints before it was kept
            RunLog.truncate(self.run_dir, state["metrics_lines"])

    def _finish(self) -> Result:
        cfg, rc = self.cfg, self.cfg.run
        self.task.write_samples(self.run_dir / "samples.txt", self.learner.sample(rc.num_samples_saved))
        # the trained generator alone (a few MB, against a checkpoint's ~90 with D and Adam)
        torch.save(self.learner.weights(), self.run_dir / "generator.pt")
        self.log.close()
        metrics = read_metrics(self.run_dir / "metrics.jsonl")
        key = self.task.metric
        plot_metric(metrics, self.run_dir / f"{key.removeprefix('eval/')}.png", key=key,
                    pretrain_epochs=cfg.train.pretrain_g_epochs, title=f"{key}, {self.run_dir.name}")
        first = metrics[0] if metrics else {}
        random = {k: v for k, v in first.items() if k.startswith("eval/")} if first.get("epoch") == 0 else {}
        summary = {"data_source": self.task.source, "metric": key,
                   "eval_random": random or None,
                   "eval_after_pretraining": self.last_eval.get("pretrain_g"),
                   "eval_after_adversarial": self.last_eval.get("adversarial"),
                   "rollout_workers": len(self.pool), "rollout_restarts": self.rollout_restarts,
                   "devices": self.devices,
                   "wall_time_s": self.elapsed + time.perf_counter() - self.started}
        if isinstance(self.task, SyntheticTask):  # the paper's Table 1 quantities, by name
            summary.update({
                "oracle_nll_random": random.get(key),
                "oracle_nll_after_pretraining": self.last_eval.get("pretrain_g", {}).get(key),
                "oracle_nll_after_adversarial": self.last_eval.get("adversarial", {}).get(key),
                "oracle_nll_of_training_data": self.task.oracle.nll(self.task.real)})
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return Result(self.run_dir, summary)


class _stop_on_signals:
    """While training, SIGINT and SIGTERM ask the loop to checkpoint and stop after its step."""

    received: int | None = None  # the signal that asked for the stop, in this process

    def __init__(self, trainer: Trainer):
        self.trainer, self.saved = trainer, {}

    def __enter__(self):
        _stop_on_signals.received = None

        def handler(signum, frame):
            if self.trainer.stop_requested:  # a second signal: stop now
                raise KeyboardInterrupt
            self.trainer.stop_requested = True
            _stop_on_signals.received = signum

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.saved[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        for sig, old in self.saved.items():
            signal.signal(sig, old)
        return False


def train(cfg: Config, task: SyntheticTask | TextTask, roles: Roles, run_dir: Path, *, resume: bool = False,
          start_from: Path | None = None) -> Result:
    """Run the whole schedule of `cfg.train` into `run_dir` (or continue it, with `resume`;
    or start from another run's checkpoint, `start_from`)."""
    return Trainer(cfg, task, roles, run_dir).run(resume=resume, start_from=start_from)


def train_with_recovery(cfg: Config, task: SyntheticTask | TextTask, make_roles: Callable[[], Roles], run_dir: Path,
                        *, resume: bool = False, start_from: Path | None = None, retries: int = 2) -> Result:
    """`train` with Ray actors: if the learner or discriminator actor dies, start new roles and
    continue from the last checkpoint, at most `retries` times; then say how to resume. (A
    rollout actor's death never gets here: the pool re-arms it. A checkpoint that cannot be
    written is not retried either: CheckpointError.) The summary's wall time and rollout
    restarts cover every attempt."""
    from .checkpoint import CheckpointError
    from .distributed.pool import ACTOR_ERRORS

    carry = Carry()
    for attempt in range(retries + 1):
        roles = make_roles()
        trainer = None
        try:
            trainer = Trainer(cfg, task, roles, run_dir, carry=carry)
            return trainer.run(resume=resume, start_from=None if resume else start_from)
        except ACTOR_ERRORS as exc:
            if trainer is not None:
                carry.restarts = max(carry.restarts, trainer.rollout_restarts)
            has_checkpoint = any((run_dir / "checkpoints").glob("*.pt"))
            if _stop_on_signals.received is not None:
                # The stop signal reached Ray's processes too (sent to the whole process group,
                # as `timeout`, systemd or a batch scheduler do): the actors, and the steps they
                # took since the newest checkpoint, are gone. Restarting would defy the stop.
                newest = latest_checkpoint(run_dir / "checkpoints").name if has_checkpoint else None
                name = signal.Signals(_stop_on_signals.received).name
                raise CheckpointError(
                    f"stopped by {name}, which reached Ray's actors as well (a signal to the whole "
                    f"process group); the steps since the newest checkpoint are lost. "
                    + (f"Resume from {newest} with: python run.py --resume {run_dir}" if newest
                       else "No checkpoint was written yet: start the run again")
                    + f". To stop with a checkpoint of the current step, signal the driver alone "
                      f"(kill -TERM {os.getpid()}).") from None
            who = "a learner or discriminator actor (or a rollout actor Ray would not restart)"
            if attempt == retries or not has_checkpoint:
                how = (f"resume with: python run.py --resume {run_dir}" if has_checkpoint
                       else "no checkpoint was written yet: start the run again")
                raise CheckpointError(f"{who} died ({type(exc).__name__}) after {attempt} restart(s); {how}") from None
            print(f"warning: {who} died ({type(exc).__name__}); restarting "
                  f"from the last checkpoint ({attempt + 1}/{retries})", file=sys.stderr)
            resume = True
        finally:
            roles.shutdown()
    raise AssertionError("unreachable")
