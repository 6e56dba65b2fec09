"""Cluster files: real `ray up` files with this project's settings under `metadata.seqgan`.

`load_cluster` validates a file with Ray's own cluster-launcher validator and reads the
app settings; `connect` starts an embedded Ray (local.yaml) or joins the running cluster
with address="auto" (gpu.yaml), and otherwise says exactly how to start one.
"""

from __future__ import annotations

import math
import shlex
import signal
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, read_yaml


class ClusterError(RuntimeError):
    """A cluster file Ray rejects, or a cluster that cannot be reached; the message says why."""


@dataclass
class ActorResources:
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    threads: int = 1

    def options(self) -> dict[str, float]:
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}


@dataclass
class ClusterSpec:
    path: Path
    name: str
    embedded: bool
    num_cpus: int | None
    rollout_workers: int | str
    rollout_worker: ActorResources
    learner: ActorResources
    discriminator: ActorResources
    pretrain_worker: ActorResources = field(default_factory=ActorResources)  # Ray Train's MLE workers
    gpu_capacity: float = 0.0  # GPUs the file's worker node types can bring, at most
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def pool_size(self, live_resources: dict[str, float]) -> int:
        """How many rollout actors to start, from the file and the live cluster."""
        if self.rollout_workers != "auto":
            return int(self.rollout_workers)
        # The learner and the discriminator take their share first; the pool gets the rest
        # (1e-9: 0.8 / 0.2 is 3.9999999999999996 in floating point).
        per, roles = self.rollout_worker, (self.learner, self.discriminator)
        if per.num_gpus > 0:
            gpus = max(self.gpu_capacity, live_resources.get("GPU", 0.0)) - sum(r.num_gpus for r in roles)
            return max(1, math.floor(gpus / per.num_gpus + 1e-9))
        spare = live_resources.get("CPU", 1.0) - sum(r.num_cpus for r in roles)
        return max(1, math.floor(spare / per.num_cpus + 1e-9))

    def check_gpus(self, live_resources: dict[str, float]) -> None:
        """Refuse a file whose roles ask for GPUs that this cluster has not and cannot bring:
        their actors would wait for them forever."""
        asking = {key: getattr(self, key).num_gpus for key in ROLE_KEYS if getattr(self, key).num_gpus > 0}
        if asking and live_resources.get("GPU", 0.0) == 0 and self.gpu_capacity == 0:
            key, n = next(iter(asking.items()))
            raise ClusterError(f"{self.path}: metadata.seqgan.{key}.num_gpus is {n}, but this Ray cluster "
                               f"has no GPU and the file's node types bring none; use a GPU machine, "
                               f"or clusters/local.yaml (CPU only)")

    def commands(self, run_args: list[str]) -> str:
        args = " ".join(shlex.quote(a) for a in run_args)
        return (f"  ray up {self.path} -y\n"
                f"  ray dashboard {self.path}   # in another shell: forwards the job port 8265\n"
                f"  ray job submit --address http://127.0.0.1:8265 --working-dir . -- python run.py {args}\n"
                f"  ray down {self.path} -y")


ROLE_KEYS = ("rollout_worker", "learner", "discriminator", "pretrain_worker")
APP_KEYS = {"embedded", "num_cpus", "rollout_workers", *ROLE_KEYS}


def validate_with_ray(raw: dict[str, Any], path: Path) -> None:
    """Run Ray's cluster-launcher validation (`ray up` does the same) on `raw`."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    try:
        validate_config(prepare_config(raw))
    except Exception as exc:  # jsonschema.ValidationError, ValueError, click's abort
        msg = getattr(exc, "message", None) or str(exc).splitlines()[0]
        raise ClusterError(f"{path}: Ray rejects this cluster file: {msg}") from None


def load_cluster(path: str | Path) -> ClusterSpec:
    path = Path(path)
    if not path.is_file():
        raise ClusterError(f"cluster file {path} does not exist (see clusters/ for examples)")
    try:
        raw = read_yaml(path)  # UTF-8, one-line errors, as for config files
    except ConfigError as exc:
        raise ClusterError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ClusterError(f"{path}: a cluster file is a mapping (cluster_name, provider, ...)")
    validate_with_ray(raw, path)
    app = (raw.get("metadata") or {}).get("seqgan")
    if not isinstance(app, dict):
        raise ClusterError(f"{path}: no 'metadata: seqgan:' section with this project's settings "
                           f"(see clusters/local.yaml)")
    unknown = set(app) - APP_KEYS
    if unknown:
        raise ClusterError(f"{path}: unknown key metadata.seqgan.{sorted(unknown)[0]}; "
                           f"valid: {', '.join(sorted(APP_KEYS))}")

    def resources(key: str) -> ActorResources:
        spec = app.get(key, {}) or {}
        try:
            res = ActorResources(**spec)
        except TypeError:
            raise ClusterError(f"{path}: metadata.seqgan.{key} takes num_cpus, num_gpus, threads; "
                               f"got {sorted(spec)}") from None
        if res.num_cpus < 0 or res.num_gpus < 0 or res.threads < 1:
            raise ClusterError(f"{path}: metadata.seqgan.{key}: num_cpus/num_gpus must be >= 0 "
                               f"and threads >= 1")
        return res

    workers = app.get("rollout_workers", 1)
    if workers != "auto" and not (isinstance(workers, int) and workers >= 1):
        raise ClusterError(f"{path}: metadata.seqgan.rollout_workers must be an integer >= 1 "
                           f"or 'auto', got {workers!r}")
    gpu_capacity = sum(node.get("max_workers", 0) * node.get("resources", {}).get("GPU", 0)
                       for name, node in (raw.get("available_node_types") or {}).items()
                       if name != raw.get("head_node_type"))
    return ClusterSpec(path=path, name=raw["cluster_name"], embedded=bool(app.get("embedded", False)),
                       num_cpus=app.get("num_cpus"), rollout_workers=workers,
                       rollout_worker=resources("rollout_worker"), learner=resources("learner"),
                       discriminator=resources("discriminator"),
                       pretrain_worker=resources("pretrain_worker"), gpu_capacity=float(gpu_capacity),
                       raw=raw)


def connect(spec: ClusterSpec, run_args: list[str]) -> None:
    """Start an embedded Ray, or join the running cluster; never fall back silently."""
    import ray

    if ray.is_initialized():
        return
    if spec.embedded:
        with _sigterm_blocked():
            ray.init(address="local", num_cpus=spec.num_cpus, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        _reap_and_mark()
        spec.check_gpus(ray.cluster_resources())
        return
    # `ray up` leaves the cluster's own config on its head node, where `ray job submit` runs
    # the driver; without it this is not that cluster (a stray local Ray must not stand in).
    here = _launched_cluster_name()
    if here != spec.name:
        where = f"this machine is not its head node (found {BOOTSTRAP_CONFIG}: " \
                f"{here!r})" if here else f"this machine is not its head node (no {BOOTSTRAP_CONFIG})"
        raise ClusterError(f"{spec.path} describes the cluster '{spec.name}', and {where}.\n"
                           f"Start it and submit this run to it with:\n{spec.commands(run_args)}")
    try:
        ray.init(address="auto", log_to_driver=False)
    except (ConnectionError, RuntimeError) as exc:
        raise ClusterError(
            f"{spec.path}: the cluster '{spec.name}' was launched here but Ray is not running "
            f"({str(exc).splitlines()[0]}). Restart it with:\n{spec.commands(run_args)}") from None
    spec.check_gpus(ray.cluster_resources())


def _reap_and_mark() -> None:
    """Reap the agents that embedded Rays of killed drivers left behind, and mark this one
    as ours (distributed/reap.py)."""
    import sys

    import ray

    from .reap import mark_session, reap_orphans

    try:
        node = ray._private.worker._global_node
        session = Path(node.get_session_dir_path())
        raylet = node.all_processes["raylet"][0].process.pid
    except Exception:  # another Ray version: nothing is reaped, nothing marked
        return
    reaped = reap_orphans(session.parent, keep=session)
    if reaped:
        print(f"reaped {len(reaped)} process(es) left by an embedded Ray whose driver was killed: "
              f"{', '.join(sorted(set(reaped)))}", file=sys.stderr)
    mark_session(session, raylet)


@contextmanager
def _sigterm_blocked():
    """Start an embedded Ray's processes with SIGTERM blocked, as Ray itself blocks SIGINT in
    them: a stop sent to the whole process group (`timeout`, systemd, a batch scheduler), like
    Ctrl-C, then reaches only the driver, which checkpoints its current step and shuts Ray
    down. Unblocked, the signal killed the actors and Ray with them, and the driver with the
    steps since the last checkpoint. (Children inherit the signal mask; Ray still stops its
    processes at shutdown, and they die with the driver.)"""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"


def _launched_cluster_name() -> str | None:
    """The cluster_name of the `ray up` cluster whose head node this is, if any."""
    path = Path(BOOTSTRAP_CONFIG).expanduser()
    try:
        return (read_yaml(path) or {}).get("cluster_name")
    except (ConfigError, AttributeError):
        return None
