"""Build the roles, train, recover: `run_training` is the one way the CLI, the sweeps and the
reproduction runs train a config, in-process (no cluster spec) or on Ray actors.

On Ray: the roles as actors (`ray_roles`), and `train_with_recovery`, which starts them again
from the last checkpoint when the learner or the discriminator actor dies. The trainer itself
(seqgan_ray.trainer) imports no Ray: it is handed a `Roles` bundle.
"""

from __future__ import annotations

import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any, Callable

from ..checkpoint import CheckpointError, latest_checkpoint
from ..config import Config
from ..roles import DiscriminatorTrainer, GeneratorLearner
from ..tasks import SyntheticTask, TextTask
from ..trainer import Carry, Result, Roles, Trainer, _stop_on_signals, local_roles
from .pool import ACTOR_ERRORS, RemoteRole, RolloutPool, start_actor
from .pretrain import pretrain_on_ray_train


def ray_roles(cfg: Config, spec, pool_size: int, *, worker_cls: type | None = None,
              learner_cls: type = GeneratorLearner) -> Roles:
    """The learner, the discriminator and `pool_size` rollout workers as Ray actors."""
    seed = cfg.run.seed
    return Roles(RemoteRole(start_actor(learner_cls, spec.learner, cfg, seed)),
                 RemoteRole(start_actor(DiscriminatorTrainer, spec.discriminator, cfg, seed + 10)),
                 RolloutPool.actors(cfg, seed + 100, pool_size, spec.rollout_worker, worker_cls=worker_cls),
                 pretrain_on_ray_train=partial(pretrain_on_ray_train, worker=spec.pretrain_worker))


def run_training(cfg: Config, task: SyntheticTask | TextTask, run_dir: Path, spec=None, *,
                 pool_size: int | None = None, resume: bool = False, start_from: Path | None = None,
                 retries: int = 2, on_iteration: Callable[[Trainer, dict[str, float]], Any] | None = None) -> Result:
    """Train `cfg` into `run_dir`: with `spec` None, every role in this process; else the roles
    as actors on the connected Ray cluster (`pool_size` rollout actors, by default as many as
    the spec gives it), started again from the last checkpoint up to `retries` times if the
    learner or the discriminator dies. `resume` continues run_dir's newest checkpoint;
    `start_from` starts from another run's checkpoint file; `on_iteration(trainer, metrics)`
    is called after every adversarial iteration."""
    if spec is None:
        roles = local_roles(cfg)
        try:
            return Trainer(cfg, task, roles, run_dir, on_iteration=on_iteration).run(
                resume=resume, start_from=None if resume else start_from)
        finally:
            roles.shutdown()
    if pool_size is None:
        import ray

        pool_size = spec.pool_size(ray.cluster_resources())
    return train_with_recovery(cfg, task, lambda: ray_roles(cfg, spec, pool_size), run_dir, resume=resume,
                               start_from=start_from, retries=retries, on_iteration=on_iteration)


def train_with_recovery(cfg: Config, task: SyntheticTask | TextTask, make_roles: Callable[[], Roles], run_dir: Path,
                        *, resume: bool = False, start_from: Path | None = None, retries: int = 2,
                        on_iteration: Callable[[Trainer, dict[str, float]], Any] | None = None) -> Result:
    """`train` with Ray actors: if the learner or discriminator actor dies, start new roles and
    continue from the last checkpoint, at most `retries` times; then say how to resume. (A
    rollout actor's death never gets here: the pool re-arms it. A checkpoint that cannot be
    written is not retried either: CheckpointError.) The summary's wall time and rollout
    restarts cover every attempt."""
    carry = Carry()
    for attempt in range(retries + 1):
        roles = make_roles()
        trainer = None
        try:
            trainer = Trainer(cfg, task, roles, run_dir, carry=carry, on_iteration=on_iteration)
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
