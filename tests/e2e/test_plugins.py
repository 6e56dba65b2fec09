"""The algorithm seam is real: an algorithm and a reward defined in tests/plugins.py, outside
the package, register and train end to end with no edit to seqgan_ray/."""

import pytest
import torch

import tests.plugins  # noqa: F401  (registers "sequence_reinforce")
from seqgan_ray.runlog import read_metrics
from seqgan_ray.tasks import load_task
from seqgan_ray.trainer import Trainer, local_roles
from tests.helpers import learns_token_share


@pytest.mark.parametrize("method", ["sequence_reinforce", "tests.plugins:SequenceReinforce"])
def test_an_algorithm_of_ones_own_trains_end_to_end(tiny_cfg, tmp_path, method):
    """By its registered name or as module:Class: the trainer pretrains, runs the plug-in's
    iterations, evaluates, checkpoints; the plug-in's own objective raises what its reward
    scores (the share of token 3), and D, which its reward does not use, is never trained."""
    tiny_cfg.train.method = method
    result, learned, d_untouched = learns_token_share(tiny_cfg, tmp_path)
    assert learned and d_untouched
    rows = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["phase"] == "adversarial"]
    assert [r["step"] for r in rows if "gen/pg_loss" in r] == list(range(1, 21))
    assert sorted((tmp_path / "checkpoints").glob("adversarial_*.pt"))
    assert result.summary["oracle_nll_after_adversarial"] > 0


def test_a_reward_of_ones_own_that_uses_d_gets_d_trained(tiny_cfg, tmp_path):
    """A reward with uses_discriminator (MaliGAN's D/(1-D), in tests/plugins.py) is built on the
    rollout worker's D, and the adversarial phase trains D and sends it to the workers."""
    cfg = tiny_cfg
    cfg.rollout.reward = "tests.plugins:OddsReward"
    roles = local_roles(cfg)
    reward = roles.pool.workers[0].reward
    assert type(reward).__name__ == "OddsReward" and reward.discriminator is roles.pool.workers[0].discriminator
    Trainer(cfg, load_task(cfg.data), roles, tmp_path).run()
    rows = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["phase"] == "adversarial"]
    assert all("disc/loss" in r for r in rows if "gen/reward_mean" in r)
    # the worker's D holds the trained one's weights, and its reward reads them
    trained = roles.discriminator.weights()
    for name, value in roles.pool.workers[0].discriminator.state_dict().items():
        assert torch.equal(value, trained[name])
    assert all(r["gen/reward_mean"] > 0 for r in rows if "gen/reward_mean" in r)
