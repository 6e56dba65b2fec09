"""Cluster files are real `ray up` files: Ray's validator, the app settings, pool sizing, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seqgan_ray.distributed.cluster import ClusterError, load_cluster
from tests.helpers import ROOT


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


def test_gpu_file_is_used_only_on_the_head_node_of_that_cluster(tmp_path, monkeypatch):
    import ray

    from seqgan_ray.distributed.cluster import connect

    spec = load_cluster(ROOT / "clusters" / "gpu.yaml")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh `run.py` process
    with pytest.raises(ClusterError, match="no ~/ray_bootstrap_config.yaml"):
        connect(spec, ["--cluster", "clusters/gpu.yaml"])
    (tmp_path / "ray_bootstrap_config.yaml").write_text("cluster_name: another-cluster\n")
    with pytest.raises(ClusterError, match="'another-cluster'") as err:
        connect(spec, ["--cluster", "clusters/gpu.yaml"])
    assert f"ray up {spec.path} -y" in str(err.value)
