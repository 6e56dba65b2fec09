"""The Ray layer: the roles as actors, and a pool of rollout actors.

The roles are plain classes (seqgan_ray.roles); Ray is applied here, from outside. The
driver loop (seqgan_ray.trainer) talks to a `Roles` bundle and cannot tell whether a role
runs in-process or as an actor: `RemoteRole` turns `role.method(...)` into
`ray.get(actor.method.remote(...))`.

Weights go out once per version: one `ray.put` for the rollout policy and one for the
discriminator, the same refs sent to every rollout actor; only the latest refs are kept,
so a restarted actor can be given them again.

A rollout actor can die at any moment, busy or idle, and Ray rebuilds it from its
constructor (`max_restarts=-1`): untrained weights, version -1. So every pool call carries
the weights version it expects the worker to hold; a worker that does not hold it refuses
(`StaleWeights`), and a call to an actor that is dead or restarting fails. Either way the
pool waits for the actor, re-arms it (the current weights, the data, a fresh random stream),
counts its restarts in `restarts` and gives it the call again: no reward is ever computed
with weights other than the current version, and no rollout actor's death leaves the pool.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Callable

import ray
import torch
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from ..config import Config
from ..roles import RolloutWorker, StaleWeights, StateDict, sample_shares
from .cluster import ActorResources

log = logging.getLogger(__name__)
ACTOR_ERRORS = (RayActorError, ActorDiedError, ActorUnavailableError)


class RemoteRole:
    """Call an actor's methods as if it were the plain object: each call waits for its result."""

    def __init__(self, actor: Any):
        self.actor = actor

    def __getattr__(self, name: str):
        method = getattr(self.actor, name)
        return lambda *args, **kwargs: ray.get(method.remote(*args, **kwargs))

    def kill(self) -> None:
        ray.kill(self.actor)


def start_actor(cls: type, res: ActorResources, cfg: Config, seed: int, *, pool: bool = False):
    opts: dict[str, Any] = res.options()
    if pool:
        # Restarted by Ray when it dies; the pool re-sends weights and re-submits the lost
        # work. SPREAD puts the pool's actors on as many nodes as can take them, except
        # inside a placement group (a Tune trial), whose bundles were reserved for them.
        opts.update(max_restarts=-1, max_task_retries=0)
        if ray.util.get_current_placement_group() is None:
            opts["scheduling_strategy"] = "SPREAD"
    return ray.remote(**opts)(cls).remote(cfg, seed, threads=res.threads)


def _wait_until_alive(actor: Any, *, timeout_s: float = 300.0) -> None:
    """Wait for Ray to bring a restarted actor back (ActorUnavailableError while it restarts);
    raise at once if Ray will not (the actor is DEAD: killed for good, its restarts used up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=max(1.0, deadline - time.monotonic()))
            return
        except ACTOR_ERRORS:
            if time.monotonic() > deadline or (_actor_info(actor) or {}).get("State") == "DEAD":
                raise
            time.sleep(0.2)


def _actor_info(actor: Any) -> dict[str, Any] | None:
    """Ray's record of `actor` in the GCS actor table ("State", "NumRestarts", ...); None if
    it cannot be read.

    Ray 2.60's public ways to ask need the dashboard (`ray.util.state.get_actor`, whose
    `num_restarts` is the same field) or run inside the actor and say only whether it ever
    restarted (`was_current_actor_reconstructed`, which reads this same table)."""
    try:
        from ray._private.state import actors

        return actors(actor_id=actor._actor_id.hex()) or None
    except Exception:  # another Ray version, a client connection: the pool counts what it sees
        return None


def rearm_seed(seed: int, version: int, restarts: int) -> int:
    """The seed of a re-armed worker's random stream: its stream before the death is lost, so
    it gets a fresh one, derived from the worker's own seed, the weights version and the
    pool's restart count (two restarts never replay one stream). Deterministic, but a run
    with a restart no longer draws the numbers an undisturbed one would."""
    digest = hashlib.sha256(f"rearm:{seed}:{version}:{restarts}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class RolloutPool:
    """Rollout actors that split each batch's reward work between them, in parallel.

    `restarts` counts the restarts of its actors, found out by the first pool call after each
    (see the module's docstring), or by `count_unseen_restarts` before the pool goes;
    `on_restart(worker, n)` is told of each as it is counted (the trainer writes it to the
    run's events.jsonl). `roles.LocalRolloutPool` has the same interface in-process.
    """

    def __init__(self, workers: list[Any], *, seeds: list[int] | None = None):
        self.workers = workers
        self.seeds = seeds if seeds is not None else list(range(len(workers)))
        self.version = 0  # the weights version every worker holds (0: the constructor's, armed)
        self.restarts = 0
        self.on_restart: Callable[[int, int], None] | None = None
        self._weights: tuple[Any, Any] = (None, None)
        self._data: Any = None  # the training data (a ref, for actors), for rewards that need it
        self._ray_restarts = [0] * len(workers)  # Ray's restart count of each actor, as last seen
        # Arm every worker at version 0; a restarted actor is at -1 and so refuses every call.
        # Not waited for: actor calls run in order, and the first real call waits.
        for w in workers:
            w.set_weights.remote(None, None, 0)

    @classmethod
    def actors(cls, cfg: Config, seed: int, size: int, res: ActorResources, *,
               worker_cls: type | None = None) -> "RolloutPool":
        return cls([start_actor(worker_cls or RolloutWorker, res, cfg, seed + i, pool=True)
                    for i in range(size)], seeds=[seed + i for i in range(size)])

    def __len__(self) -> int:
        return len(self.workers)

    # ------------------------------------------------------------------ calls on every worker

    def _each(self, method: str, args: Callable[[int], tuple] = lambda i: (), *, expect: int | None = None,
              workers: range | None = None, checked: bool = True, rearm_is_enough: bool = False) -> list[Any]:
        """`worker.method(*args(i), expect=...)` on each worker i (all, or `workers`), in
        parallel; their results in order. `expect` (default: the current version)
        is the weights version the worker must hold (`checked` False: a call that does not
        take it). A worker whose actor died, under the call or before it, is waited for,
        re-armed and given the call again (unless re-arming did what the call does:
        `rearm_is_enough`)."""
        idx = range(len(self.workers)) if workers is None else workers

        def submit(i: int, version: int) -> Any:
            fn, kwargs = getattr(self.workers[i], method), {"expect": version} if checked else {}
            return fn.remote(*args(i), **kwargs)

        first = self.version if expect is None else expect
        pending = {i: submit(i, first) for i in idx}
        results: dict[int, Any] = {}
        while pending:
            i, ref = next(iter(pending.items()))
            try:
                results[i] = ray.get(ref)
                del pending[i]
            except (*ACTOR_ERRORS, StaleWeights) as exc:
                self._rearm(i, exc)
                if rearm_is_enough:
                    results[i] = None
                    del pending[i]
                else:
                    pending[i] = submit(i, self.version)
        return [results[i] for i in idx]

    def _rearm(self, i: int, exc: Exception) -> None:
        """Wait for actor i to be alive, give it the current weights (and data, and a fresh
        random stream if it was rebuilt), and count its restarts."""
        worker = self.workers[i]
        while True:
            _wait_until_alive(worker)
            seed = rearm_seed(self.seeds[i], self.version, self.restarts)
            try:
                rebuilt = ray.get(worker.rearm.remote(*self._weights, self.version, data=self._data, seed=seed))
                break
            except ACTOR_ERRORS:  # it died again while being re-armed
                continue
        seen = (_actor_info(worker) or {}).get("NumRestarts")
        new = 0 if seen is None else seen - self._ray_restarts[i]
        if seen is not None:
            self._ray_restarts[i] = seen
        new = max(new, 1 if rebuilt else 0)  # rebuilt: at least one restart, whatever Ray says
        self._count(i, new)
        what = f"{new} restart(s)" if new else "not restarted"
        log.warning("rollout actor %d (%s): %s; re-armed with weights version %d", i,
                    type(exc).__name__, what, self.version)

    def _count(self, i: int, new: int) -> None:
        if new:
            self.restarts += new
            if self.on_restart is not None:
                self.on_restart(i, new)

    def count_unseen_restarts(self) -> int:
        """Count the restarts Ray has made that no pool call has found yet (an actor that died
        after the pool's last call, e.g. just before a recovery or the run's end), from Ray's
        restart count of each actor; returns how many."""
        found = 0
        for i, worker in enumerate(self.workers):
            seen = (_actor_info(worker) or {}).get("NumRestarts")
            if seen is not None and seen > self._ray_restarts[i]:
                found += seen - self._ray_restarts[i]
                self._count(i, seen - self._ray_restarts[i])
                self._ray_restarts[i] = seen
        return found

    # ------------------------------------------------------------------ the pool's interface

    def set_weights(self, policy: StateDict | None, discriminator: StateDict | None) -> None:
        """Send a new version of β and/or φ (None: keep the last one) to every worker, one
        ray.put per version."""
        held, self.version = self.version, self.version + 1
        policy = ray.put(policy) if policy is not None else self._weights[0]
        discriminator = ray.put(discriminator) if discriminator is not None else self._weights[1]
        self._weights = (policy, discriminator)
        self._each("set_weights", lambda i: (policy, discriminator, self.version), expect=held,
                   rearm_is_enough=True)

    def set_data(self, real: torch.Tensor) -> None:
        """Give every worker the training data (one ray.put), for rewards that score against it."""
        self._data = ray.put(real)
        self._each("set_data", lambda i: (self._data,))

    def rewards(self, seqs: torch.Tensor) -> torch.Tensor:
        """Eq. 4 rewards (B, T) for `seqs` (B, T), the rows split across the workers, each
        share computed by a worker that holds the current weights version."""
        shares = [s for s in seqs.tensor_split(len(self.workers)) if len(s)]
        return torch.cat(self._each("rewards", lambda i: (shares[i],), workers=range(len(shares))))

    def sample(self, num: int) -> torch.Tensor:
        """`num` sequences from the workers' policy (LeakGAN's negatives, evaluation samples),
        split between the workers, each share drawn with the current weights version."""
        shares = [n for n in sample_shares(num, len(self.workers)) if n]
        return torch.cat(self._each("sample", lambda i: (shares[i],), workers=range(len(shares))))

    def infill(self, seqs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """MaskGAN's in-fills of `seqs` (B, T) where `present` is False, the rows split across the
        workers, each share filled by a worker that holds the current weights version."""
        n = len(self.workers)
        parts = [(s, m) for s, m in zip(seqs.tensor_split(n), present.tensor_split(n)) if len(s)]
        return torch.cat(self._each("infill", lambda i: parts[i], workers=range(len(parts))))

    def rng_states(self) -> list[torch.Tensor]:
        return self._each("get_rng_state")

    def set_rng_states(self, states: list[torch.Tensor]) -> None:
        """Restore the workers' random streams (a pool of another size starts each afresh)."""
        if len(states) == len(self.workers):
            self._each("set_rng_state", lambda i: (states[i],))

    def devices(self) -> list[str]:
        """The torch device each worker computes on ("cpu" or "cuda")."""
        return self._each("device_name", checked=False)

    def node_ids(self) -> list[str]:
        """The Ray node each actor runs on (for placement checks)."""
        return self._each("__ray_call__", lambda i: (lambda self: ray.get_runtime_context().get_node_id(),),
                          checked=False)

    def shutdown(self) -> None:
        for w in self.workers:
            ray.kill(w)
        self.workers = []

