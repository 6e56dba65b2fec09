"""A plug-in algorithm on Ray actors: its objective travels to the learner actor by reference,
its reward is built on the rollout actors, and the run ends as the in-process one does."""

from seqgan_ray.distributed.cluster import ActorResources, ClusterSpec
from seqgan_ray.distributed.recovery import run_training
from seqgan_ray.runlog import read_metrics
from seqgan_ray.tasks import load_task
from tests.helpers import torch_threads


def test_a_plugin_algorithm_trains_on_actors_as_in_process(ray_cluster, tiny_cfg, tmp_path):
    cfg = tiny_cfg
    cfg.train.method, cfg.rollout.reward = "tests.plugins:SequenceReinforce", "tests.reward_plugins:TokenShare"
    res = ActorResources(num_cpus=0.5, threads=1)
    spec = ClusterSpec(path=tmp_path / "c.yaml", name="test", embedded=True, num_cpus=2, rollout_workers=1,
                       rollout_worker=res, learner=res, discriminator=res)
    on_ray = run_training(cfg, load_task(cfg.data), tmp_path / "ray", spec, pool_size=1)
    with torch_threads(res.threads):  # the actors' thread count: the same float sums
        local = run_training(cfg, load_task(cfg.data), tmp_path / "local")
    rows = {name: [r for r in read_metrics(tmp_path / name / "metrics.jsonl") if "gen/pg_loss" in r]
            for name in ("ray", "local")}
    assert len(rows["ray"]) == cfg.train.adv_iterations
    for a, b in zip(rows["ray"], rows["local"]):  # each role's randomness is its own: equal numbers
        assert a["gen/pg_loss"] == b["gen/pg_loss"] and a["gen/reward_mean"] == b["gen/reward_mean"]
    assert on_ray.summary["oracle_nll_after_adversarial"] == local.summary["oracle_nll_after_adversarial"]
