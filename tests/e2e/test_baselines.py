"""The baselines train end to end: a user's reward is learned; mle and scheduled_sampling run MLE
epochs as their iterations."""

import math

import pytest

from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import local_roles, train
from tests.helpers import learns_token_share


def test_a_users_reward_is_learned(tiny_cfg, tmp_path):
    """rollout.reward names the user's class; policy gradient raises what it rewards."""
    _, learned, d_untouched = learns_token_share(tiny_cfg, tmp_path)
    assert learned
    assert d_untouched  # D is not this reward: it is never trained in the adversarial phase


@pytest.mark.parametrize("method", ["mle", "scheduled_sampling"])
def test_mle_baselines_train_one_epoch_an_iteration(tiny_cfg, tmp_path, method):
    cfg = tiny_cfg
    cfg.train.method, cfg.train.adv_iterations, cfg.train.sampling_step = method, 4, 0.125
    result = train(cfg, load_task(cfg.data), local_roles(cfg), tmp_path)
    from seqgan_ray.runlog import read_metrics

    steps = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "gen/mle_nll" in r]
    assert [r["epoch"] for r in steps] == [3, 4, 5, 6]  # after the 2 pretraining epochs
    probs = [r["gen/sampling_prob"] for r in steps]
    assert probs == ([0.125, 0.25, 0.375, 0.5] if method == "scheduled_sampling" else [0.0] * 4)
    assert all(math.isfinite(r["gen/mle_nll"]) for r in steps)
    assert result.summary["eval_after_adversarial"]["eval/oracle_nll_ci95"] > 0
    assert not any("disc/loss" in r for r in read_metrics(tmp_path / "metrics.jsonl") if r["phase"] == "adversarial")
