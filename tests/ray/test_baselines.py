"""PG-BLEU on rollout actors: the training data reaches them for the reward."""

from seqgan_ray.distributed.recovery import ray_roles
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import train


def test_pg_bleu_on_ray_actors(ray_cluster, tiny_cfg, tmp_path):
    """The training data reaches the rollout actors (one ray.put) for the BLEU reward."""
    from seqgan_ray.distributed.cluster import ActorResources, ClusterSpec

    cfg = tiny_cfg
    cfg.rollout.reward = "bleu"
    res = ActorResources(num_cpus=0.5, threads=1)
    spec = ClusterSpec(path=tmp_path / "c.yaml", name="test", embedded=True, num_cpus=2, rollout_workers=2,
                       rollout_worker=res, learner=res, discriminator=res)
    roles = ray_roles(cfg, spec, 2)
    try:
        result = train(cfg, load_task(cfg.data), roles, tmp_path)
    finally:
        roles.shutdown()
    from seqgan_ray.runlog import read_metrics

    steps = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "gen/reward_mean" in r]
    assert len(steps) == 2 and all(0 < r["gen/reward_mean"] <= 1 for r in steps)
    assert result.summary["oracle_nll_after_adversarial"] > 0
