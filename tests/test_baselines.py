"""The paper's baselines as settings of the one trainer: more MLE epochs, scheduled
sampling, PG-BLEU, and rewards of the user's own (rollout.reward: module:Class)."""

import math

import pytest
import torch

from seqgan_ray.bleu import bleu
from seqgan_ray.config import ConfigError, config_from_dict, load_config
from seqgan_ray.oracle import load_task
from seqgan_ray.policy import LSTMPolicy
from seqgan_ray.roles import RolloutWorker
from seqgan_ray.scores import BleuReward, load_reward
from seqgan_ray.train import Trainer, local_roles, ray_roles, train


def _policy(seed=0):
    p = LSTMPolicy(30, 8, 8, 6)
    p.reset_parameters(0.5, torch.Generator().manual_seed(seed))
    return p


def test_scheduled_sampling_at_zero_is_teacher_forcing():
    p = _policy()
    seqs = torch.randint(0, 30, (16, 6), generator=torch.Generator().manual_seed(1))
    got = p.log_probs_scheduled(seqs, 0.0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(got, p.log_probs(seqs))


def test_scheduled_sampling_at_one_feeds_the_models_own_samples():
    p = _policy()
    seqs = torch.randint(0, 30, (16, 6), generator=torch.Generator().manual_seed(1))
    got = p.log_probs_scheduled(seqs, 1.0, generator=torch.Generator().manual_seed(2))
    # Replay the draws: the same uniforms pick the same tokens, which become the inputs.
    g = torch.Generator().manual_seed(2)
    state, tok, inputs = p.initial_state(16), torch.zeros(16, dtype=torch.long), []
    for t in range(6):
        inputs.append(tok)
        state = p.step(tok, state)
        if t + 1 < 6:
            tok = p.sample_next(state[0], torch.rand(16, 3, generator=g)[:, :2])
    h, _ = p.hidden_states(torch.stack(inputs[1:] + [tok], 1))  # inputs(x) = start, x[:-1]
    want = torch.log_softmax(h @ p.W_out + p.b_out, -1).gather(2, seqs[..., None]).squeeze(2)
    torch.testing.assert_close(got, want)
    assert torch.equal(got[:, 0], p.log_probs(seqs)[:, 0])  # the first input is always the start token
    assert not torch.allclose(got[:, 1:], p.log_probs(seqs)[:, 1:])
    got.sum().backward()  # gradients flow through the states
    assert p.W.grad is not None and p.W.grad.abs().sum() > 0


def test_bleu_reward_is_texygen_bleu_against_the_training_data(tiny_cfg):
    tiny_cfg.rollout.bleu_n = 3
    real = torch.randint(0, 12, (50, 8), generator=torch.Generator().manual_seed(0))
    hyps = torch.randint(0, 12, (20, 8), generator=torch.Generator().manual_seed(1))
    got = BleuReward(tiny_cfg, real)(hyps)
    refs = [tuple(r) for r in real.tolist()]
    want = [bleu([tuple(h)], refs, max_n=3)[3] for h in hyps.tolist()]
    assert got.shape == (20,) and got.dtype == torch.float32
    assert got.tolist() == pytest.approx(want, abs=1e-6)
    assert BleuReward(tiny_cfg, real)(real[:5]).tolist() == pytest.approx([1.0] * 5)


def test_bleu_reward_cuts_text_at_the_end_token(tiny_cfg):
    tiny_cfg.data.eos_token = 2
    real = torch.tensor([[5, 6, 7, 8, 2, 0, 0, 0]] * 3)
    score = BleuReward(tiny_cfg, real)(torch.tensor([[5, 6, 7, 8, 2, 0, 0, 0], [5, 6, 7, 8, 9, 9, 9, 2]]))
    assert score[0] == pytest.approx(1.0) and score[1] < 1.0


def test_reward_names_are_checked(tiny_cfg):
    with pytest.raises(ConfigError, match="rollout.reward"):
        load_config(None, ["rollout.reward=critic"])
    with pytest.raises(ConfigError, match="cannot import no_such_module"):
        load_reward("no_such_module:Reward")
    with pytest.raises(ConfigError, match="has no Missing"):
        load_reward("tests.reward_plugins:Missing")
    with pytest.raises(ConfigError, match="train.method"):
        load_config(None, ["train.method=gail"])
    with pytest.raises(ConfigError, match="bleu_n"):
        load_config(None, ["rollout.bleu_n=1"])


def test_worker_needs_the_data_for_a_data_reward(tiny_cfg):
    tiny_cfg.rollout.reward = "bleu"
    worker = RolloutWorker(tiny_cfg, seed=0)
    seqs = torch.randint(0, 40, (4, 8))
    with pytest.raises(RuntimeError, match="set_data"):
        worker.rewards(seqs)
    worker.set_data(seqs)
    rewards = worker.rewards(seqs)
    assert rewards.shape == (4, 8) and rewards[:, -1].tolist() == pytest.approx([1.0] * 4)


def _share(learner, token=3, n=2000):
    return float((learner.sample(n) == token).float().mean())


def test_a_users_reward_is_learned(tiny_cfg, tmp_path):
    """rollout.reward names the user's class; policy gradient raises what it rewards."""
    cfg = tiny_cfg
    cfg.rollout.reward = "tests.reward_plugins:TokenShare"
    cfg.generator.adv_lr = 0.05
    cfg.train.adv_iterations, cfg.train.eval_every, cfg.train.checkpoint_every = 20, 20, 20
    roles = local_roles(cfg)
    trainer = Trainer(cfg, load_task(cfg.data), roles, tmp_path)
    before = {}

    def first_iteration(t, metrics):
        if t.step == 1:
            before["share"] = _share(roles.learner)
            before["d"] = [p.detach().clone() for p in roles.discriminator.discriminator.parameters()]

    trainer.on_iteration = first_iteration
    trainer.run()
    after = _share(roles.learner)
    assert after > 2 * before["share"] and after > 0.1, (before["share"], after)
    # D is not this reward: it is never trained in the adversarial phase.
    for a, b in zip(before["d"], roles.discriminator.discriminator.parameters()):
        assert torch.equal(a, b)


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


@pytest.mark.ray
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
