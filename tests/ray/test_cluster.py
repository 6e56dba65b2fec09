"""Clusters live: a simulated two-node cluster runs training, Ray Train's GPU check, and Ray's
processes leave SIGTERM to the driver."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from seqgan_ray.distributed.cluster import ClusterError
from tests.helpers import ROOT


def test_ray_train_workers_that_cannot_get_their_gpu_share_are_refused(ray_cluster, tmp_path):
    from seqgan_ray.config import Config
    from seqgan_ray.distributed.cluster import ActorResources
    from seqgan_ray.distributed.pretrain import pretrain_on_ray_train

    with pytest.raises(ClusterError, match=r"2 x 0.05 GPUs .*pretrain_worker.num_gpus.*leave 0 free"):
        pretrain_on_ray_train(Config(), tmp_path, num_workers=2, worker=ActorResources(0, 0.05, 1),
                              generator_state={}, storage=tmp_path)


TWO_NODES = textwrap.dedent("""
    import ray, torch
    from pathlib import Path
    from ray.cluster_utils import Cluster
    from tests.conftest import TINY
    from seqgan_ray.config import config_from_dict
    from seqgan_ray.distributed.cluster import ActorResources, ClusterSpec
    from seqgan_ray.tasks.synthetic import load_task
    from seqgan_ray.distributed.recovery import ray_roles
    from seqgan_ray.trainer import train

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    res = ActorResources(num_cpus=0.25, threads=1)
    spec = ClusterSpec(path=Path("two-nodes"), name="two", embedded=False, num_cpus=None,
                       rollout_workers=2, rollout_worker=res, learner=res, discriminator=res)
    cfg = config_from_dict(TINY)
    roles = ray_roles(cfg, spec, 2)
    nodes = set(roles.pool.node_ids())
    result = train(cfg, load_task(cfg.data), roles, Path(__import__("sys").argv[1]))
    roles.shutdown()
    print("NODES", len(nodes), "ITER", result.summary["oracle_nll_after_adversarial"] is not None)
    ray.shutdown()
    cluster.shutdown()
""")


def test_two_node_cluster_places_rollout_actors_on_both_nodes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", TWO_NODES, str(tmp_path / "run")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NODES 2 ITER True" in proc.stdout, proc.stdout
    assert (tmp_path / "run" / "summary.json").is_file()


SIGTERM_MASKS = """
import os, signal, ray
from seqgan_ray.distributed.cluster import connect, load_cluster
from tests.helpers import ROOT

def blocks_sigterm(pid):
    status = open(f"/proc/{pid}/status").read()
    mask = int(next(l for l in status.splitlines() if l.startswith("SigBlk:")).split()[1], 16)
    return bool(mask & (1 << (signal.SIGTERM - 1)))

connect(load_cluster("clusters/local.yaml"), [])

@ray.remote(num_cpus=0.5)
class Actor:
    def pid(self):
        return os.getpid()

node = ray._private.worker._global_node
ray_procs = [info.process.pid for infos in node.all_processes.values() for info in infos]
actor = Actor.remote()
print("driver", blocks_sigterm(os.getpid()))
print("ray", all(blocks_sigterm(p) for p in ray_procs), len(ray_procs))
print("actor", blocks_sigterm(ray.get(actor.pid.remote())))
ray.shutdown()
"""

@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads signal masks from /proc (Linux)")
def test_embedded_ray_processes_leave_sigterm_to_the_driver():
    """A SIGTERM sent to the whole process group reaches only the driver, which checkpoints
    and stops (tests/e2e/test_faults.py); Ray's processes and the actors have it blocked."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-c", SIGTERM_MASKS], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["driver"] == "False"   # the driver takes the signal and stops cleanly
    ok, count = lines["ray"].split()
    assert ok == "True" and int(count) >= 2  # GCS, raylet, ...
    assert lines["actor"] == "True"
