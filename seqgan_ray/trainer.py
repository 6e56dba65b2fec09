"""The driver: the schedule every algorithm shares, read top to bottom in `Trainer.run`.

    pretrain G by MLE; pretrain D on real vs generated
    repeat adv_iterations times:
        one iteration of the algorithm train.method names (seqgan.py: Algorithm 1's
        g_steps of Eq. 4 rewards and Eq. 8, the β update, d_steps of D training)
        evaluate, log, checkpoint

The same loop drives plain in-process roles (tests, `--no-ray`) or Ray actors: it only sees
a `Roles` bundle, and imports no Ray (seqgan_ray.distributed builds the actors). Every checkpoint holds the position in the schedule, so a run resumes
where it stopped; in-process, a resumed run writes the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .algorithms import NumericalError, check_finite, load_algorithm  # noqa: F401 (NumericalError: re-exported)
from .checkpoint import FORMAT, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import Config, ConfigError, best_direction, save_config
from .events import EventLog
from .kernels.linear import slow_bfloat16_note
from .rewards import needs_data, uses_discriminator
from .roles import DiscriminatorTrainer, GeneratorLearner, LocalRolloutPool
from .runlog import Progress, RunLog, plot_metric, read_metrics
from .tasks.reader import distinct_indices
from .tasks.synthetic import SyntheticTask
from .tasks.text import TextTask
from .tasks.token_file import DataError

PHASES = ("pretrain_g", "pretrain_d", "adversarial")
TEXT_SAMPLES = 8  # generator samples shown in TensorBoard's text tab at each evaluation
MLE_CHUNK = 64  # batches of a streamed MLE epoch sent to the learner in one call


class Interrupted(RuntimeError):
    """SIGINT or SIGTERM: a checkpoint was written and the run can be resumed."""


@dataclass
class Roles:
    learner: Any        # GeneratorLearner or a RemoteRole around its actor
    discriminator: Any  # DiscriminatorTrainer or a RemoteRole
    pool: Any           # LocalRolloutPool, or distributed.pool.RolloutPool of actors
    # MLE pretraining on Ray Train (distributed.pretrain.pretrain_on_ray_train with the cluster
    # file's worker resources), handed in by the Ray layer; None: no Ray
    pretrain_on_ray_train: Callable[..., Any] | None = None

    def devices(self) -> dict[str, Any]:
        """Where each role computes: {"learner": "cuda", "discriminator": ..., "rollout": [...]}."""
        return {"learner": self.learner.device_name(), "discriminator": self.discriminator.device_name(),
                "rollout": self.pool.devices()}

    def shutdown(self) -> None:
        self.pool.shutdown()
        for role in (self.learner, self.discriminator):
            if hasattr(role, "kill"):  # a distributed.pool.RemoteRole: end its actor
                role.kill()


def local_roles(cfg: Config, *, rollout_workers: int = 1) -> Roles:
    seed = cfg.run.seed
    return Roles(GeneratorLearner(cfg, seed), DiscriminatorTrainer(cfg, seed + 10),
                 LocalRolloutPool(cfg, seed + 100, rollout_workers))


@dataclass
class Result:
    run_dir: Path
    summary: dict[str, Any]


def describe_devices(devices: dict[str, Any]) -> str:
    """"learner cuda, discriminator cuda, rollout actors cuda x 4" from `Roles.devices()`."""
    rollout = ", ".join(f"{d} x {devices['rollout'].count(d)}" for d in sorted(set(devices["rollout"])))
    return f"learner {devices['learner']}, discriminator {devices['discriminator']}, rollout actors {rollout}"


BASELINES = ("mle", "scheduled_sampling")  # train.method values that train no D adversarially


def check_task(cfg: Config, task: SyntheticTask | TextTask) -> None:
    """Refuse a task the config cannot train on (the CLI asks before Ray starts)."""
    if task.num_train < max(cfg.generator.batch_size, cfg.discriminator.batch_size):
        raise DataError(f"{task.source}: {task.num_train} training sequences, fewer than one "
                        f"batch (generator.batch_size={cfg.generator.batch_size}, "
                        f"discriminator.batch_size={cfg.discriminator.batch_size})")
    if cfg.generator.kind == "leakgan" and cfg.leakgan.step_size >= cfg.data.seq_len:
        raise ConfigError(f"'leakgan.step_size' ({cfg.leakgan.step_size}) must be smaller than T = "
                          f"{cfg.data.seq_len} ({task.source}): lower it")


class Trainer:
    def __init__(self, cfg: Config, task: SyntheticTask | TextTask, roles: Roles, run_dir: Path, *,
                 on_iteration: Callable[["Trainer", dict[str, float]], None] | None = None,
                 attempt: int = 1):
        check_task(cfg, task)
        self.num_real = real_per_round(cfg, task)  # None: the whole training set, held by D
        self.algorithm = load_algorithm(cfg.train.method)()  # a bad name fails here, not midway
        if hasattr(self.algorithm, "check_task"):  # e.g. MaskGAN: sentences too short to mask
            self.algorithm.check_task(cfg, task)
        # whether the reward scores with D (so D trains), and whether it needs the data
        self.reward_uses_discriminator = uses_discriminator(cfg.rollout.reward)
        self._reward_needs_data = needs_data(cfg.rollout.reward)
        self.cfg, self.task, self.roles, self.run_dir = cfg, task, roles, run_dir
        self.learner, self.disc, self.pool = roles.learner, roles.discriminator, roles.pool
        self.phase, self.step = PHASES[0], -1  # -1: not started; else steps done in `phase`
        self.last_eval: dict[str, dict[str, float]] = {}  # phase -> its latest evaluation
        self.adversarial_start: dict[str, torch.Tensor] | None = None  # θ when the adversarial phase began
        self.restarts_before = 0  # rollout actor restarts in earlier processes and attempts
        self.attempt = attempt  # 1: this process's first at the run; 2, 3: recoveries in it
        # faults, recoveries, attempts: appended as they happen, never cut back (events.py)
        self.events = EventLog(run_dir)
        self.pool.on_restart = lambda worker, n: self.events.append("rollout_restart", worker=worker, restarts=n)
        self.stop_requested = False
        self.on_iteration = on_iteration  # e.g. Ray Tune's report, after every adversarial iteration
        # draws the rows the trainer hands out: D's real samples, the order of a streamed MLE epoch
        self.data_rng = torch.Generator().manual_seed(cfg.run.seed + 20)
        # LeakGAN: G samples through a copy of D, refreshed after every D round; pretraining interleaved
        self.leaks = cfg.generator.kind == "leakgan"
        self.interleaved = bool(getattr(self.algorithm, "interleaved_pretraining", False))
        # whether the method trains a sequence-classifying D (eval/d_heldout_acc is reported): not the
        # MLE baselines, nor SeqGAN with a reward that does not score with D, nor a method whose D
        # is of another kind and trained its own way (MaskGAN's per-token D: its `d_round`)
        self.trains_d = (cfg.train.method not in BASELINES and not hasattr(self.algorithm, "d_round")
                         and (self.reward_uses_discriminator or cfg.train.method != "seqgan"))

    # ------------------------------------------------------------------ the schedule

    def run(self, *, resume: bool = False, start_from: Path | None = None) -> Result:
        """Train from scratch, from this run's newest checkpoint (`resume`), or from another
        run's checkpoint file (`start_from`, e.g. a pretrained one shared by a sweep)."""
        with self.session(resume=resume, start_from=start_from), _stop_on_signals([self]):
            self.pretrain()
            if self._todo("adversarial"):
                self.adversarial()
            return self._finish()

    @contextlib.contextmanager
    def session(self, *, resume: bool = False, start_from: Path | None = None):
        """The run folder set up (or restored from a checkpoint: `resume`, `start_from`), its
        logs open and the roles given their data, for the phases to run inside; on the way out
        the attempt's end is recorded and the logs closed. (`run` is one session; the seeds
        of stacked_runs.train_stacked are K side by side.)"""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            resume = self._restore(latest_checkpoint(self.run_dir / "checkpoints"), own=True)
            save_config(cfg, self.run_dir / "config.yaml")  # with the overrides the resume was given
        else:
            save_config(cfg, self.run_dir / "config.yaml")
            (self.run_dir / "data_source.txt").write_text(self.task.source + "\n")
            if getattr(self.task, "seeded", False):  # data.oracle_dir=<run>/oracle gives the same task
                self.task.save_oracle(self.run_dir / "oracle")
            # this run's own checkpoint (a Tune trial restored): a resume; else it starts afresh
            resume = start_from is not None and self._restore(start_from, own=None)
            if not resume:  # records left by a killed attempt that never checkpointed go
                RunLog.reset(self.run_dir)
                self.events.reset()
        self.log = RunLog(self.run_dir)
        self.devices = self.roles.devices()
        if cfg.run.progress:
            print(f"devices: {describe_devices(self.devices)}", file=sys.stderr, flush=True)
        if cfg.discriminator.precision == "bfloat16" and self.devices["discriminator"] == "cpu":
            note = slow_bfloat16_note()
            if note:
                print(note, file=sys.stderr, flush=True)
        self.restarts_before = self.events.totals().restarts["rollout"]  # the pool's own count from 0
        self.events.append("start", attempt=self.attempt, resume=bool(resume), phase=self.phase, step=self.step)
        self.last_checkpoint = time.perf_counter()
        self._hand_over_data()
        try:
            yield self
        except BaseException as exc:  # the attempt's end, for the wall time; the caller says why
            self.events.append("stop", reason=type(exc).__name__)
            raise
        finally:
            self.log.close()

    def pretrain(self) -> None:
        """The pretraining phases still to run: G by MLE, then D."""
        if self._todo("pretrain_g"):
            self.pretrain_generator()
        if self._todo("pretrain_d"):
            self.pretrain_discriminator()

    def pretrain_generator(self) -> None:
        """MLE on the training data, with NLL-oracle every eval_every epochs."""
        E, tc = self.cfg.train.pretrain_g_epochs, self.cfg.train
        if self.step < 0:
            self.evaluate(0)  # the untrained generator: the paper's "Random"
            self.step = 0
        if tc.pretrain_workers:
            return self.pretrain_generator_on_ray_train()
        bar = self._progress("pretrain G (MLE)" + (", D interleaved" if self.interleaved else ""), E)
        for epoch in range(self.step + 1, E + 1):
            if self.interleaved:
                self.interleaved_d_rounds(epoch)
            t0 = time.perf_counter()
            loss = self.mle_epoch()
            check_finite("pretrain_g", epoch, **{"MLE loss": loss})
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
        if self.roles.pretrain_on_ray_train is None:
            raise ConfigError("train.pretrain_workers needs Ray (drop --no-ray, or set it to 0)")
        E, workers = self.cfg.train.pretrain_g_epochs, self.cfg.train.pretrain_workers
        print(f"pretrain G (MLE) on Ray Train: {workers} workers, {E} epochs", file=sys.stderr)
        result = self.roles.pretrain_on_ray_train(self.cfg, self.task.folder, num_workers=workers,
                                                  generator_state=self.learner.weights(),
                                                  storage=self.run_dir / "ray_train")
        self.learner.load_pretrained(result.generator, result.mle_opt)
        for epoch, (loss, seconds) in enumerate(zip(result.epoch_losses, result.epoch_seconds), 1):
            check_finite("pretrain_g", epoch, **{"MLE loss": loss})
            self.log.log("pretrain_g", epoch, epoch, {"pretrain/gen_nll": loss, "time/epoch_s": seconds})
        self.evaluate(E)
        self._end_step(E, last=True)
        self._next_phase()

    def interleaved_d_rounds(self, epoch: int) -> None:
        """Before MLE epoch `epoch`, if it begins one of leakgan.pretrain_rounds rounds: that
        round's share of the D pretraining rounds (the reference's pretraining, LeakGAN)."""
        tc, R = self.cfg.train, self.cfg.leakgan.pretrain_rounds
        per_round, d_per_round = tc.pretrain_g_epochs // R, tc.pretrain_d_rounds // R
        if (epoch - 1) % per_round:
            return
        first = (epoch - 1) // per_round * d_per_round
        for rnd in range(first + 1, first + d_per_round + 1):
            t0 = time.perf_counter()
            stats = self.d_round(tc.pretrain_d_epochs)
            check_finite("pretrain_d", rnd, **{"discriminator loss": stats.loss})
            self.log.log("pretrain_d", rnd, epoch - 1, {"disc/loss": stats.loss, "disc/acc_real": stats.acc_real,
                                                        "disc/acc_fake": stats.acc_fake,
                                                        "time/d_train_s": time.perf_counter() - t0})

    def pretrain_discriminator(self) -> None:
        """Rounds of fresh negatives, then pretrain_d_epochs of D on real + fake (unless they
        were interleaved with MLE)."""
        tc, E = self.cfg.train, self.cfg.train.pretrain_g_epochs
        if self.interleaved:
            return self._next_phase()
        bar = self._progress("pretrain D", tc.pretrain_d_rounds)
        for rnd in range(max(self.step, 0) + 1, tc.pretrain_d_rounds + 1):
            t0 = time.perf_counter()
            stats = self.d_round(tc.pretrain_d_epochs)
            check_finite("pretrain_d", rnd, **{"discriminator loss": stats.loss})
            metrics = {"disc/loss": stats.loss, "disc/acc_real": stats.acc_real, "disc/acc_fake": stats.acc_fake,
                       "time/d_train_s": time.perf_counter() - t0}
            if rnd == tc.pretrain_d_rounds and self.trains_d:  # the regime adversarial training starts in
                fake = self.learner.sample(tc.eval_samples, seed=self._heldout_seed(rnd) + 1)  # G's stream untouched
                self.last_eval["pretrain_d"] = self.d_heldout(fake, rnd)
                metrics.update(self.last_eval["pretrain_d"])
            elif rnd == tc.pretrain_d_rounds and hasattr(self.algorithm, "d_heldout"):  # a D of its own kind
                self.last_eval["pretrain_d"] = self.algorithm.d_heldout(self, rnd)
                metrics.update(self.last_eval["pretrain_d"])
            self.log.log("pretrain_d", rnd, E, metrics)
            bar.update(rnd, f"loss {stats.loss:.3f}  acc real {stats.acc_real:.2f} fake {stats.acc_fake:.2f}")
            self._end_step(rnd, last=rnd == tc.pretrain_d_rounds)
        self._next_phase()

    def adversarial(self) -> None:
        """The adversarial iterations of the algorithm train.method names (seqgan: Algorithm 1's
        loop; the baselines' are MLE epochs), each evaluated, logged and checkpointed here."""
        self.begin_adversarial()
        bar = self._progress(self.algorithm.label, self.cfg.train.adv_iterations)
        for it in range(self.step + 1, self.cfg.train.adv_iterations + 1):
            self.adversarial_iteration(it, bar)
        self._next_phase()

    def begin_adversarial(self) -> None:
        """The algorithm's start of the phase (β ← θ on a fresh one); θ kept to measure its move."""
        self.algorithm.start(self, fresh=self.step <= 0)
        if self.step <= 0:  # gen/param_change is measured from here
            self.adversarial_start = generator_own(self.learner.weights())
        self.step = max(self.step, 0)

    def adversarial_iteration(self, it: int, bar: Progress) -> None:
        """Iteration `it` of the algorithm, then `end_iteration`."""
        t_iter = time.perf_counter()
        metrics, note = self.algorithm.iteration(self, it)
        metrics["time/iteration_s"] = time.perf_counter() - t_iter
        self.end_iteration(it, metrics, note, bar)

    def end_iteration(self, it: int, metrics: dict[str, float], note: str, bar: Progress | None) -> None:
        """After adversarial iteration `it` (whoever ran it): its metrics logged, an evaluation
        when one is due, the progress line, Tune's report, and a checkpoint when one is due."""
        tc = self.cfg.train
        self.log.log("adversarial", it, tc.pretrain_g_epochs + it, metrics)
        if it % tc.eval_every == 0 or it == tc.adv_iterations:
            metrics.update(self.evaluate(it))
        if bar is not None:
            bar.update(it, f"{note}  {self._latest()}")
        if self.on_iteration is not None:
            self.step = it
            self.on_iteration(self, metrics)
        self._end_step(it, last=it == tc.adv_iterations)

    # ------------------------------------------------------------------ pieces

    def mle_epoch(self, sampling_prob: float = 0.0) -> float:
        """One MLE epoch of G over the training data (scheduled sampling with `sampling_prob`
        > 0); the mean NLL per token. A corpus streams to the learner MLE_CHUNK batches a call."""
        rows = self.task.train_rows
        if rows is None:
            return self.learner.pretrain_epoch(sampling_prob)
        batches = rows.batches(self.cfg.generator.batch_size, self.data_rng, shuffle=self.cfg.generator.shuffle)
        total, steps = 0.0, 0
        while chunk := list(itertools.islice(batches, MLE_CHUNK)):
            total += self.learner.mle_batches(torch.stack(chunk), sampling_prob)
            steps += len(chunk)
        return total / max(steps, 1)

    def d_round(self, epochs: int, fake: torch.Tensor | None = None) -> Any:
        """One round of D (Eq. 5): train.num_negatives fresh samples of G (or `fake`) against the
        real sequences, `epochs` passes; returns the role's DiscStats. LeakGAN's G gets the new D.
        An algorithm with its own `d_round` (MaskGAN's per-token D) trains D its way."""
        if hasattr(self.algorithm, "d_round"):
            return self.algorithm.d_round(self, epochs)
        if fake is None:
            fake = self.generator_samples(self.cfg.train.num_negatives)
        stats = self.disc.train(fake, epochs, self.real_for_d())
        if self.leaks:
            self.learner.set_critic(self.disc.weights())
        return stats

    def generator_samples(self, n: int) -> torch.Tensor:
        """`n` samples of G_θ: from the learner, or on the rollout pool, given θ (with its copy of
        D) first: for LeakGAN, whose every token passes D, and for an algorithm that says
        `samples_on_pool = True` (MaskGAN: its pool is otherwise idle)."""
        if not (self.leaks or getattr(self.algorithm, "samples_on_pool", False)):
            return self.learner.sample(n)
        self.pool.set_weights(self.learner.weights(), None)
        return self.pool.sample(n)

    def real_batch(self, n: int) -> torch.Tensor:
        """`n` real training sequences, a fresh uniform sample (a batch of the relaxed GANs)."""
        rows = self.task.train_rows
        if rows is None:
            return self.task.real[torch.from_numpy(distinct_indices(self.task.num_train, n, self.data_rng))]
        return rows.sample(n, self.data_rng)

    def real_for_d(self) -> torch.Tensor | None:
        """D's real sequences for one round: None for the whole training set the role holds
        (the synthetic task's default), else a fresh uniform sample of `num_real` of them."""
        if self.leaks and self.cfg.leakgan.fresh_positives:
            n = self.num_real or self.cfg.train.num_negatives
            if self.task.train_rows is None and hasattr(self.task, "oracle"):  # the reference: new oracle samples
                return self.task.oracle.sample(n, generator=self.data_rng)
            return self.real_batch(min(n, self.task.num_train))
        if self.num_real is None:
            return None
        return self.real_batch(self.num_real)

    def evaluate(self, step: int) -> dict[str, float]:
        """The task's metrics of eval_samples generator samples: NLL-oracle for the synthetic
        task; NLL-test, BLEU and Self-BLEU for text."""
        t0 = time.perf_counter()
        samples = self.generator_samples(self.cfg.train.eval_samples)
        metrics = self.task.evaluate(samples, self.learner.nll)
        if hasattr(self.algorithm, "evaluate"):  # the method's own (MaskGAN's in-fills, a relaxed GAN's sampler)
            metrics.update(self.algorithm.evaluate(self, step, samples))
        check_finite(self.phase, step, **{self.task.metric: metrics[self.task.metric]})
        if self.trains_d:
            metrics.update(self.d_heldout(samples, step))
        if self.phase == "adversarial" and self.adversarial_start is not None:  # whether G moved at all
            metrics["gen/param_change"] = relative_change(generator_own(self.learner.weights()),
                                                          self.adversarial_start)
        self.last_eval[self.phase] = metrics
        epoch = step + (self.cfg.train.pretrain_g_epochs if self.phase == "adversarial" else 0)
        self.log.log(self.phase, step, epoch, {**metrics, "time/eval_s": time.perf_counter() - t0})
        shown = samples[:TEXT_SAMPLES]
        self.log.text("samples", self.task.decode(shown) if isinstance(self.task, TextTask)
                      else [" ".join(map(str, row)) for row in shown.tolist()], epoch)
        if self.cfg.train.keep_best:
            self._keep_if_best(metrics, step)
        return metrics

    def _keep_if_best(self, metrics: dict[str, float], step: int) -> None:
        """train.keep_best: the generator of the best evaluation so far, and where it was."""
        key = self.cfg.train.keep_best
        if key not in metrics:
            return
        best_file, sign = self.run_dir / "best.json", best_direction(key)
        best = json.loads(best_file.read_text()) if best_file.is_file() else None
        if best is None or sign * metrics[key] > sign * best["value"]:
            torch.save(self.learner.weights(), self.run_dir / ".best_generator.pt.tmp")
            (self.run_dir / ".best_generator.pt.tmp").replace(self.run_dir / "best_generator.pt")
            best_file.write_text(json.dumps({"metric": key, "value": metrics[key], "phase": self.phase,
                                             "step": step}) + "\n")

    def d_heldout(self, fake: torch.Tensor, step: int) -> dict[str, float]:
        """eval/d_heldout_acc: D's accuracy on fresh real sequences against `fake`, fresh samples
        of G, neither of which D trained on (the synthetic task: new oracle samples; text: a
        sample of the held-out split), as many as `fake`. Near 0.5, D is at chance and its
        rewards or gradients carry little signal. eval/d_trainset_acc: the same on training
        sequences (those D's real side is drawn from) against the same `fake`. Drawn from a stream of its own (seeded by the
        run's seed, the phase and `step`), so training draws the same numbers with it or without."""
        rng = torch.Generator().manual_seed(self._heldout_seed(step))
        if isinstance(self.task, SyntheticTask):
            real = self.task.oracle.sample(len(fake), generator=rng)
        else:
            test = self.task.test
            real = test[torch.randperm(len(test), generator=rng)[:len(fake)]]
        # and on training sequences against the same fakes: far above the held-out accuracy, D
        # recognises its training set rather than the data's distribution
        train = self.task.real[torch.randperm(len(self.task.real), generator=rng)[:len(fake)]]
        return {"eval/d_heldout_acc": self.disc.heldout_accuracy(real, fake),
                "eval/d_trainset_acc": self.disc.heldout_accuracy(train, fake)}

    def _heldout_seed(self, step: int) -> int:
        return self.cfg.run.seed * 1_000_003 + 1_000 * PHASES.index(self.phase) + step

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
        saved = last or step % tc.checkpoint_every == 0 or overdue or self.stop_requested
        if saved:
            self.checkpoint()
        self.events.append("step", phase=self.phase, step=step, checkpoint=saved)
        if self.stop_requested:
            if not saved:  # the signal came after the check above
                self.checkpoint()
            raise Interrupted(f"stopped at {self.phase} step {step}; checkpoint written")

    def _state(self) -> dict[str, Any]:
        return {"format": FORMAT, "phase": self.phase, "step": self.step, "config": self.cfg.to_dict(),
                "learner": self.learner.state_dict(), "discriminator": self.disc.state_dict(),
                "rollout_rng": self.pool.rng_states(), "data_rng": self.data_rng.get_state(),
                "last_eval": dict(self.last_eval), "adversarial_start": self.adversarial_start,
                "metrics_lines": self.log.lines, "run_dir": str(self.run_dir.resolve()),
                # the run's totals so far, for versions that read them from here
                "rollout_restarts": self.rollout_restarts, "elapsed_s": self.events.totals(now=time.time()).wall_time_s}

    def checkpoint(self) -> Path:
        path = save_checkpoint(self.run_dir / "checkpoints", f"{self.phase}_{self.step:06d}", self._state(),
                               keep=self.cfg.train.keep_checkpoints)
        self.last_checkpoint = time.perf_counter()
        return path

    def write_state(self, path: Path) -> None:
        """A checkpoint at `path` (for Ray Tune's own checkpoints)."""
        torch.save(self._state(), path)

    def load(self, path: Path) -> None:
        """Take the roles' state (weights, optimisers, streams) and the phase from checkpoint
        `path` without running anything, nor touching the run the checkpoint came from: for
        probes that go on from a run's checkpoint (experiments/separability.py)."""
        self._restore(path, own=False)
        self._hand_over_data()

    def _hand_over_data(self) -> None:
        """What the roles hold besides their weights: a small training set whole, the data a
        reward is built on, LeakGAN's copy of D in G."""
        if self.task.train_rows is None:  # a small training set: the roles hold it whole
            self.learner.set_data(self.task.real)
            self.disc.set_data(self.task.real)
        if self._reward_needs_data:
            self.pool.set_data(self.task.real)
        if self.leaks:
            self.learner.set_critic(self.disc.weights())

    def _restore(self, path: Path, *, own: bool | None) -> bool:
        """Load checkpoint `path`; `own` (None: if it was written in this run folder): resuming
        this run, whose records are cut back to the checkpoint's, rather than starting another
        run from it. Returns `own`."""
        state = load_checkpoint(path, self.cfg)
        if own is None:
            own = state.get("run_dir") == str(self.run_dir.resolve())
        self.learner.load_state_dict(state["learner"])
        self.disc.load_state_dict(state["discriminator"])
        self.pool.set_rng_states(state["rollout_rng"])
        if "data_rng" in state:  # absent from checkpoints before corpora streamed
            self.data_rng.set_state(state["data_rng"])
        self.phase, self.step = state["phase"], state["step"]
        self.last_eval = dict(state["last_eval"])
        self.adversarial_start = state.get("adversarial_start")  # absent from checkpoints before it was kept
        if own:
            RunLog.truncate(self.run_dir, state["metrics_lines"])
            if not self.events.exists():  # a run from before events.jsonl: its checkpoint's totals
                self.events.append("before", rollout_restarts=state.get("rollout_restarts", 0),
                                   wall_time_s=state.get("elapsed_s", 0.0))
        return own

    def _finish(self) -> Result:
        cfg, rc = self.cfg, self.cfg.run
        self.task.write_samples(self.run_dir / "samples.txt", self.learner.sample(rc.num_samples_saved))
        # the trained generator alone (a few MB, against a checkpoint's ~90 with D and Adam)
        torch.save(self.learner.weights(), self.run_dir / "generator.pt")
        self.log.close()
        self.pool.count_unseen_restarts()  # a rollout actor that died after the last pool call
        self.events.append("finish")
        totals = self.events.totals()
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
                   # D's accuracy on fresh real against fresh G samples (not its training data)
                   "d_heldout_acc_after_pretraining": self.last_eval.get(
                       "pretrain_d", self.last_eval.get("pretrain_g", {})).get("eval/d_heldout_acc"),
                   "d_heldout_acc_after_adversarial": self.last_eval.get("adversarial", {}).get("eval/d_heldout_acc"),
                   "d_trainset_acc_after_pretraining": self.last_eval.get(
                       "pretrain_d", self.last_eval.get("pretrain_g", {})).get("eval/d_trainset_acc"),
                   "d_trainset_acc_after_adversarial": self.last_eval.get("adversarial", {}).get("eval/d_trainset_acc"),
                   "rollout_workers": len(self.pool), "devices": self.devices,
                   # totals over every attempt and process (events.jsonl)
                   "rollout_restarts": totals.restarts["rollout"], "restarts": totals.restarts,
                   "recoveries": totals.recoveries, "gave_up": totals.gave_up, "resumes": totals.resumes,
                   "attempts": totals.attempts, "wall_time_s": totals.wall_time_s}
        if isinstance(self.task, SyntheticTask):  # the paper's Table 1 quantities, by name
            summary.update({
                "oracle_nll_random": random.get(key),
                "oracle_nll_after_pretraining": self.last_eval.get("pretrain_g", {}).get(key),
                "oracle_nll_after_adversarial": self.last_eval.get("adversarial", {}).get(key),
                "oracle_nll_of_training_data": self.task.oracle.nll(self.task.real)})
        if (self.run_dir / "best.json").is_file():
            summary["best"] = json.loads((self.run_dir / "best.json").read_text())
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if not rc.keep_checkpoints_at_end:  # generator.pt holds what sampling and evaluation need
            shutil.rmtree(self.run_dir / "checkpoints", ignore_errors=True)
        return Result(self.run_dir, summary)


def generator_own(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """G's state dict without LeakGAN's frozen copy of D (`leak.*`), which moves with D's rounds."""
    return {k: v for k, v in state.items() if not k.startswith("leak.")}


def relative_change(new: dict[str, torch.Tensor], old: dict[str, torch.Tensor]) -> float:
    """‖θ − θ₀‖ / ‖θ₀‖ over the floating-point tensors of two state dicts of the same model:
    how far G has moved from θ₀ (gen/param_change; 0 when an update never reaches G's weights)."""
    keys = [k for k, v in old.items() if v.is_floating_point()]
    diff = sum(float((new[k].float() - old[k].float()).pow(2).sum()) for k in keys)
    norm = sum(float(old[k].float().pow(2).sum()) for k in keys)
    return (diff / norm) ** 0.5 if norm > 0 else float("inf") if diff > 0 else 0.0


def real_per_round(cfg: Config, task: SyntheticTask | TextTask) -> int | None:
    """How many real sequences D sees a round (train.num_real); None: the whole training set,
    which the roles hold (the synthetic task, by default)."""
    asked, available = cfg.train.num_real, task.num_train
    if asked == -1:
        return None if task.train_rows is None else min(cfg.train.num_negatives, available)
    if asked > available:
        raise DataError(f"train.num_real={asked}: more than the {available} training sequences; give at "
                        f"most {available}, or -1 for the default")
    return asked


class _stop_on_signals:
    """While training, SIGINT and SIGTERM ask the loop to checkpoint and stop after its step
    (every trainer's, when several train in lockstep)."""

    received: int | None = None  # the signal that asked for the stop, in this process

    def __init__(self, trainers: list[Trainer]):
        self.trainers, self.saved = trainers, {}

    def __enter__(self):
        _stop_on_signals.received = None

        def handler(signum, frame):
            if any(t.stop_requested for t in self.trainers):  # a second signal: stop now
                raise KeyboardInterrupt
            for t in self.trainers:
                t.stop_requested = True
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
