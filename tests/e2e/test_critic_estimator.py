"""SeqGAN with rollout.estimator critic end to end: no rollouts at all, and an exact resume."""

import copy

from seqgan_ray.config import config_from_dict
from seqgan_ray.runlog import read_metrics
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import local_roles, train
from tests.helpers import LONGER, assert_resumes_exactly


def test_seqgan_with_the_critic_estimator_runs_without_rollouts_and_resumes_exactly(tmp_path):
    data = copy.deepcopy(LONGER)
    data["rollout"] = {**data["rollout"], "estimator": "critic"}
    data["train"].update(adv_iterations=3, checkpoint_every=1, g_steps=2)
    cfg = config_from_dict(data)
    task = load_task(cfg.data)
    roles = local_roles(cfg)

    def no_rollouts(*args, **kwargs):
        raise AssertionError("the critic estimator must not roll out")

    roles.pool.rewards = no_rollouts
    train(cfg, task, roles, tmp_path / "whole")
    steps = [r for r in read_metrics(tmp_path / "whole" / "metrics.jsonl") if "critic/loss" in r]
    assert len(steps) == 3 and all(0 < r["gen/d_score_mean"] < 1 and r["critic/loss"] >= 0 for r in steps)
    assert_resumes_exactly(cfg, task, tmp_path, role="learner", method="critic_pg_step", call=3)
