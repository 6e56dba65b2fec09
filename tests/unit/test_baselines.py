"""The paper's baselines, the pieces: scheduled sampling's inputs, the BLEU reward, a user's reward
class and its errors."""

import pytest
import torch

from seqgan_ray.config import ConfigError, load_config
from seqgan_ray.models.policy import LSTMPolicy
from seqgan_ray.rewards import BleuReward, load_reward
from seqgan_ray.roles import RolloutWorker
from seqgan_ray.tasks.bleu import bleu


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
            tok = p.sample_next(state, torch.rand(16, 3, generator=g)[:, :2])
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


def test_the_constant_reward_scores_every_completion_one_and_needs_no_d(tiny_cfg):
    """rollout.reward constant (the no-signal control): rewards all 1, no data, no D."""
    from seqgan_ray.rewards import uses_discriminator

    from seqgan_ray.rewards import ConstantReward
    from seqgan_ray.rollout import mc_rewards

    tiny_cfg.rollout.reward = "constant"
    worker = RolloutWorker(tiny_cfg, seed=0)
    seqs, before = torch.randint(0, 40, (4, 8)), worker.rng.get_state()
    rewards = worker.rewards(seqs)
    assert rewards.shape == (4, 8) and torch.equal(rewards, torch.ones(4, 8))
    assert not uses_discriminator("constant")
    # what Eq. 4's rollouts give, without them: the worker's random stream is not drawn from
    rolled = mc_rewards(worker.policy, ConstantReward(tiny_cfg, None), seqs, tiny_cfg.rollout.num_rollouts,
                        generator=torch.Generator().manual_seed(0))
    assert torch.equal(rolled, rewards) and torch.equal(worker.rng.get_state(), before)
