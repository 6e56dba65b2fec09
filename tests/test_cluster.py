"""Cluster files are real `ray up` files; a simulated two-node cluster runs training."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from seqgan_ray.distributed.cluster import ClusterError, load_cluster

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["local.yaml", "gpu.yaml", "workstation.yaml"])
def test_cluster_files_pass_rays_validator(name):
    spec = load_cluster(ROOT / "clusters" / name)
    assert spec.rollout_worker.threads >= 1


def test_gpu_pool_is_sized_from_the_file_and_live_resources():
    """The pool gets the GPUs the learner and the discriminator leave: an "auto" pool that
    took them all left those two actors waiting for a GPU forever."""
    spec = load_cluster(ROOT / "clusters" / "gpu.yaml")
    assert not spec.embedded and spec.gpu_capacity == 4.0
    per, taken = spec.rollout_worker.num_gpus, spec.learner.num_gpus + spec.discriminator.num_gpus
    assert taken > 0
    assert spec.pool_size({"CPU": 8}) == int((4 - taken) / per)          # autoscaled GPUs from the file
    assert spec.pool_size({"CPU": 8, "GPU": 8}) == int((8 - taken) / per)  # more GPUs live than the file says
    assert (spec.pool_size({"CPU": 8}) * per + taken) <= 4


def test_pool_size_survives_floating_point():
    spec = load_cluster(ROOT / "clusters" / "workstation.yaml")
    spec.learner.num_gpus = spec.discriminator.num_gpus = 0.1
    assert spec.pool_size({"GPU": 1}) == 4  # (1 - 0.1 - 0.1) / 0.2 is 3.9999999999999996


def test_ray_train_workers_that_cannot_get_their_gpu_share_are_refused(ray_cluster, tmp_path):
    from seqgan_ray.config import Config
    from seqgan_ray.distributed.cluster import ActorResources
    from seqgan_ray.distributed.pretrain import pretrain_on_ray_train

    with pytest.raises(ClusterError, match=r"2 x 0.05 GPUs .*pretrain_worker.num_gpus.*leave 0 free"):
        pretrain_on_ray_train(Config(), tmp_path, num_workers=2, worker=ActorResources(0, 0.05, 1),
                              generator_state={}, storage=tmp_path)


def test_workstation_pool_leaves_room_for_ray_train_on_one_gpu():
    spec = load_cluster(ROOT / "clusters" / "workstation.yaml")
    assert spec.embedded and spec.gpu_capacity == 0
    assert spec.pool_size({"CPU": 16, "GPU": 1}) == 4
    assert spec.pool_size({"CPU": 16, "GPU": 2}) == 9
    used = 4 * spec.rollout_worker.num_gpus + spec.learner.num_gpus + spec.discriminator.num_gpus
    assert used + 2 * spec.pretrain_worker.num_gpus <= 1.0 + 1e-9  # two Ray Train workers fit beside them
    spec.check_gpus({"CPU": 16, "GPU": 1})
    with pytest.raises(ClusterError, match=r"workstation.yaml: metadata.seqgan.rollout_worker.num_gpus is 0.2"):
        spec.check_gpus({"CPU": 16})
    load_cluster(ROOT / "clusters" / "local.yaml").check_gpus({"CPU": 2})  # asks for none


def _write(tmp_path, data) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_ray_rejects_unknown_top_level_key(tmp_path):
    data = yaml.safe_load((ROOT / "clusters" / "local.yaml").read_text())
    data["num_rollouts"] = 16  # app settings belong under metadata:
    path = _write(tmp_path, data)
    with pytest.raises(ClusterError, match=str(path)):
        load_cluster(path)


def test_missing_app_settings_and_bad_values_are_named(tmp_path):
    data = yaml.safe_load((ROOT / "clusters" / "local.yaml").read_text())
    del data["metadata"]
    with pytest.raises(ClusterError, match="metadata: seqgan"):
        load_cluster(_write(tmp_path, data))
    data["metadata"] = {"seqgan": {"embedded": True, "rollout_workers": 0}}
    with pytest.raises(ClusterError, match="rollout_workers"):
        load_cluster(_write(tmp_path, data))
    with pytest.raises(ClusterError, match="does not exist"):
        load_cluster(tmp_path / "nope.yaml")


TWO_NODES = textwrap.dedent("""
    import ray, torch
    from pathlib import Path
    from ray.cluster_utils import Cluster
    from tests.conftest import TINY
    from seqgan_ray.config import config_from_dict
    from seqgan_ray.distributed.cluster import ActorResources, ClusterSpec
    from seqgan_ray.oracle import load_task
    from seqgan_ray.train import ray_roles, train

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


@pytest.mark.ray
def test_two_node_cluster_places_rollout_actors_on_both_nodes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", TWO_NODES, str(tmp_path / "run")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NODES 2 ITER True" in proc.stdout, proc.stdout
    assert (tmp_path / "run" / "summary.json").is_file()


def test_gpu_file_is_used_only_on_the_head_node_of_that_cluster(tmp_path, monkeypatch):
    from seqgan_ray.distributed.cluster import connect

    import ray

    spec = load_cluster(ROOT / "clusters" / "gpu.yaml")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh `run.py` process
    with pytest.raises(ClusterError, match="no ~/ray_bootstrap_config.yaml"):
        connect(spec, ["--cluster", "clusters/gpu.yaml"])
    (tmp_path / "ray_bootstrap_config.yaml").write_text("cluster_name: another-cluster\n")
    with pytest.raises(ClusterError, match="'another-cluster'") as err:
        connect(spec, ["--cluster", "clusters/gpu.yaml"])
    assert f"ray up {spec.path} -y" in str(err.value)


SIGTERM_MASKS = """
import os, signal, ray
from seqgan_ray.distributed.cluster import connect, load_cluster

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
    and stops (tests/test_faults.py); Ray's processes and the actors have it blocked."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-c", SIGTERM_MASKS], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["driver"] == "False"   # the driver takes the signal and stops cleanly
    ok, count = lines["ray"].split()
    assert ok == "True" and int(count) >= 2  # GCS, raylet, ...
    assert lines["actor"] == "True"
