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
from ..events import EventLog
from ..roles import DiscriminatorTrainer, GeneratorLearner
from ..tasks import SyntheticTask, TextTask
from ..trainer import Result, Roles, Trainer, _stop_on_signals, local_roles
from .pool import ACTOR_ERRORS, RemoteRole, RolloutPool, _actor_info, start_actor
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
    written is not retried either: CheckpointError.) Every death, recovery and give-up goes
    to the run's events.jsonl as it happens; the summary's totals count them over every
    attempt and process."""
    events = EventLog(run_dir)
    for attempt in range(retries + 1):
        roles = make_roles()
        try:
            trainer = Trainer(cfg, task, roles, run_dir, attempt=attempt + 1, on_iteration=on_iteration)
            return trainer.run(resume=resume, start_from=None if resume else start_from)
        except ACTOR_ERRORS as exc:
            _record_deaths(roles, exc, events)
            has_checkpoint = any((run_dir / "checkpoints").glob("*.pt"))
            if _stop_on_signals.received is not None:
                events.append("gave_up", reason=signal.Signals(_stop_on_signals.received).name)
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
                events.append("gave_up", reason="no checkpoint" if not has_checkpoint else "retries used up")
                how = (f"resume with: python run.py --resume {run_dir}" if has_checkpoint
                       else "no checkpoint was written yet: start the run again")
                raise CheckpointError(f"{who} died ({type(exc).__name__}) after {attempt} restart(s); {how}") from None
            events.append("recovery", attempt=attempt + 2,
                          checkpoint=latest_checkpoint(run_dir / "checkpoints").name)
            print(f"warning: {who} died ({type(exc).__name__}); restarting "
                  f"from the last checkpoint ({attempt + 1}/{retries})", file=sys.stderr)
            resume = True
        finally:
            roles.shutdown()
    raise AssertionError("unreachable")


def _record_deaths(roles: Roles, exc: BaseException, events: EventLog) -> None:
    """Write which actors died to `events`: the learner and the discriminator (each asked
    whether it answers: the error names only the first of two deaths), rollout actors Ray
    will not restart (DEAD in its actor table), and any rollout restart that no pool call
    had found yet."""
    import ray

    try:
        roles.pool.count_unseen_restarts()
    except Exception:  # the cluster is going away: count what can be counted
        pass
    dead = []
    for role in ("learner", "discriminator"):
        actor = getattr(getattr(roles, role), "actor", None)
        try:
            if actor is not None:  # idle: the driver's calls to it are synchronous
                ray.get(actor.__ray_ready__.remote(), timeout=30)
        except ACTOR_ERRORS:
            dead.append(role)
        except ray.exceptions.GetTimeoutError:  # alive, but busy
            pass
    dead += ["rollout" for w in getattr(roles.pool, "workers", []) if (_actor_info(w) or {}).get("State") == "DEAD"]
    for role in dead or ["unknown"]:
        events.append("role_died", role=role, error=type(exc).__name__)
