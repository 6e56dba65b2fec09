"""MLE pretraining on Ray Train over a prepared corpus, then adversarial training."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import TINY_TEXT, text_corpus


def test_mle_pretraining_on_ray_train_then_adversarial_training(ray_cluster, tmp_path):
    """Ray Train's 2 gloo workers stream the Parquet shards through Ray Data; the adversarial
    phase starts from the checkpoint they leave, on the role actors."""
    from seqgan_ray.config import load_config
    from seqgan_ray.distributed.cluster import ActorResources, ClusterSpec
    from seqgan_ray.distributed.recovery import ray_roles
    from seqgan_ray.tasks.text import load_task
    from seqgan_ray.trainer import train

    train_txt, test_txt = text_corpus(tmp_path / "text")
    cfg = load_config(None, [f"data.corpus={train_txt}", f"data.test_text={test_txt}",
                             "train.pretrain_workers=2", "train.pretrain_g_epochs=2",
                             "train.adv_iterations=1", *TINY_TEXT])
    run = tmp_path / "run"
    task = load_task(cfg.data, run)
    # 3 actors and 2 Train workers in 2 CPUs, one CPU left free for Ray Data's file listing
    res = ActorResources(num_cpus=0.3, threads=1)
    spec = ClusterSpec(path=Path("test"), name="test", embedded=True, num_cpus=2, rollout_workers=1,
                       rollout_worker=res, learner=res, discriminator=res,
                       pretrain_worker=ActorResources(num_cpus=0.05, threads=1))
    roles = ray_roles(cfg, spec, 1)
    try:
        result = train(cfg, task, roles, run)
    finally:
        roles.shutdown()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    mle = [r["pretrain/gen_nll"] for r in records if "pretrain/gen_nll" in r]
    assert len(mle) == 2 and mle[1] < mle[0]
    s = result.summary
    assert s["eval_after_pretraining"]["eval/nll_test"] < s["eval_random"]["eval/nll_test"]
    assert s["eval_after_adversarial"] is not None
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "pretrain_g_000002.pt"
