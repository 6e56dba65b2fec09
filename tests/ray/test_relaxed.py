"""RelGAN and TextGAN with their learner and discriminator as Ray actors: the objectives travel
by reference, each role's copy of the other's network by state dict; the same metrics as in one
process."""

import pytest

from seqgan_ray.distributed.cluster import ActorResources, ClusterSpec
from seqgan_ray.distributed.recovery import ray_roles
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import local_roles, train
from tests.e2e.test_relaxed import relaxed_config
from tests.e2e.test_textgan import textgan_config
from tests.helpers import stable_metrics


@pytest.mark.parametrize("method", ["relgan", "textgan"])
def test_relaxed_gan_on_ray_actors_matches_one_process(ray_cluster, tmp_path, method):
    cfg = relaxed_config("relgan") if method == "relgan" else textgan_config()
    task = load_task(cfg.data)
    res = ActorResources(num_cpus=0.5, threads=1)
    spec = ClusterSpec(path=tmp_path / "c.yaml", name="test", embedded=True, num_cpus=2, rollout_workers=1,
                       rollout_worker=res, learner=res, discriminator=res)
    roles = ray_roles(cfg, spec, 1)
    try:
        train(cfg, task, roles, tmp_path / "ray")
    finally:
        roles.shutdown()
    train(cfg, task, local_roles(cfg), tmp_path / "local")
    ray_rows = stable_metrics(tmp_path / "ray" / "metrics.jsonl")
    local_rows = stable_metrics(tmp_path / "local" / "metrics.jsonl")
    assert [r.keys() for r in ray_rows] == [r.keys() for r in local_rows]
    for a, b in zip(ray_rows, local_rows):
        for key, value in a.items():
            if isinstance(value, float):
                assert abs(value - b[key]) <= 1e-4 * max(1.0, abs(b[key])), (key, value, b[key])
