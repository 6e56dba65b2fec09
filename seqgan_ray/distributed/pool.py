"""The Ray layer: the roles as actors, and a pool of rollout actors.

The roles are plain classes (seqgan_ray.roles); Ray is applied here, from outside. The
driver loop (seqgan_ray.train) talks to a `Roles` bundle and cannot tell whether a role
runs in-process or as an actor: `RemoteRole` turns `role.method(...)` into
`ray.get(actor.method.remote(...))`.

Weights go out once per version: one `ray.put` for the rollout policy and one for the
discriminator, the same refs sent to every rollout actor; only the latest refs are kept,
so a restarted actor can be given them again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import ray
import torch
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from ..config import Config
from ..roles import RolloutWorker, StateDict
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
    """Wait for Ray to bring a restarted actor back (ActorUnavailableError while it restarts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=max(1.0, deadline - time.monotonic()))
            return
        except ACTOR_ERRORS:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class RolloutPool:
    """Rollout workers that split each batch's reward work between them.

    Works with plain `RolloutWorker`s (in-process, one after another) or with actors
    (in parallel); `restarts` counts actors that died and were restarted mid-batch.
    """

    def __init__(self, workers: list[Any], *, remote: bool):
        self.workers, self.remote = workers, remote
        self.version = 0
        self.restarts = 0
        self._weights: tuple[Any, Any] = (None, None)
        self._data: Any = None  # the training data (a ref, for actors), for rewards that need it

    @classmethod
    def local(cls, cfg: Config, seed: int, size: int = 1) -> "RolloutPool":
        return cls([RolloutWorker(cfg, seed + i) for i in range(size)], remote=False)

    @classmethod
    def actors(cls, cfg: Config, seed: int, size: int, res: ActorResources, *,
               worker_cls: type | None = None) -> "RolloutPool":
        return cls([start_actor(worker_cls or RolloutWorker, res, cfg, seed + i, pool=True)
                    for i in range(size)], remote=True)

    def __len__(self) -> int:
        return len(self.workers)

    def set_weights(self, policy: StateDict | None, discriminator: StateDict | None) -> None:
        """Send a new version of β and/or φ to every worker (one ray.put per version)."""
        self.version += 1
        if not self.remote:
            for w in self.workers:
                w.set_weights(policy, discriminator, self.version)
            return
        p_ref = ray.put(policy) if policy is not None else self._weights[0]
        d_ref = ray.put(discriminator) if discriminator is not None else self._weights[1]
        self._weights = (p_ref, d_ref)
        ray.get([w.set_weights.remote(p_ref, d_ref, self.version) for w in self.workers])

    def set_data(self, real: torch.Tensor) -> None:
        """Give every worker the training data (one ray.put), for rewards that score against it."""
        if not self.remote:
            for w in self.workers:
                w.set_data(real)
            return
        self._data = ray.put(real)
        ray.get([w.set_data.remote(self._data) for w in self.workers])

    def rewards(self, seqs: torch.Tensor) -> torch.Tensor:
        """Eq. 4 rewards (B, T) for `seqs` (B, T), the rows split across the workers."""
        shards = [s for s in np.array_split(np.arange(seqs.shape[0]), len(self.workers)) if len(s)]
        if not self.remote:
            return torch.cat([w.rewards(seqs[idx]) for w, idx in zip(self.workers, shards)])
        pending = {i: self.workers[i].rewards.remote(seqs[idx]) for i, idx in enumerate(shards)}
        results: dict[int, torch.Tensor] = {}
        while pending:
            i, ref = next(iter(pending.items()))
            try:
                results[i] = ray.get(ref)
                del pending[i]
            except ACTOR_ERRORS as exc:
                # Ray restarts the actor (max_restarts=-1); give it the current weights
                # again and recompute its share of the batch.
                self.restarts += 1
                log.warning("rollout actor %d died (%s); re-sending weights, re-submitting its shard",
                            i, type(exc).__name__)
                worker = self.workers[i]
                _wait_until_alive(worker)
                worker.set_weights.remote(*self._weights, self.version)
                if self._data is not None:
                    worker.set_data.remote(self._data)
                pending[i] = worker.rewards.remote(seqs[shards[i]])
        return torch.cat([results[i] for i in range(len(shards))])

    def rng_states(self) -> list[torch.Tensor]:
        if not self.remote:
            return [w.get_rng_state() for w in self.workers]
        return ray.get([w.get_rng_state.remote() for w in self.workers])

    def set_rng_states(self, states: list[torch.Tensor]) -> None:
        """Restore the workers' random streams (a pool of another size starts each afresh)."""
        if len(states) != len(self.workers):
            return
        if not self.remote:
            for w, s in zip(self.workers, states):
                w.set_rng_state(s)
            return
        ray.get([w.set_rng_state.remote(s) for w, s in zip(self.workers, states)])

    def devices(self) -> list[str]:
        """The torch device each worker computes on ("cpu" or "cuda")."""
        if not self.remote:
            return [w.device_name() for w in self.workers]
        return ray.get([w.device_name.remote() for w in self.workers])

    def node_ids(self) -> list[str]:
        """The Ray node each actor runs on (for placement checks)."""
        if not self.remote:
            return []
        return ray.get([w.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
                        for w in self.workers])

    def shutdown(self) -> None:
        if self.remote:
            for w in self.workers:
                ray.kill(w)
        self.workers = []
