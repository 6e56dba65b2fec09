"""The in-process roles: rollout-policy lag, MLE pretraining, discriminator training, rewards."""

import io
import math

import pytest
import torch

from seqgan_ray.config import config_from_dict
from seqgan_ray.roles import DiscriminatorTrainer, GeneratorLearner, RolloutWorker
from seqgan_ray.tasks.synthetic import seeded_oracle


def _cfg(update_rate=0.8):
    return config_from_dict({
        "data": {"vocab_size": 30, "seq_len": 6, "oracle_emb_dim": 8, "oracle_hidden_dim": 8,
                 "num_train": 256},
        "generator": {"emb_dim": 16, "hidden_dim": 16, "batch_size": 32},
        "discriminator": {"emb_dim": 8, "filter_sizes": [1, 2, 3], "num_filters": [4, 4, 4],
                          "batch_size": 32},
        "rollout": {"num_rollouts": 2, "update_rate": update_rate},
    })


def _real(cfg, n=512):
    return seeded_oracle(cfg.data).sample(n, generator=torch.Generator().manual_seed(0))


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _pg_step(learner):
    seqs = learner.sample(16)
    rewards = torch.rand(16, 6, generator=torch.Generator().manual_seed(7))
    learner.pg_step(seqs, rewards)


def test_rollout_policy_lags_generator():
    learner = GeneratorLearner(_cfg(0.8), seed=0)
    _pg_step(learner)  # make θ differ from the β built at construction
    learner.sync_rollout_policy()
    assert all(torch.equal(b, t) for b, t in zip(_params(learner.rollout_policy), _params(learner.generator)))
    beta_old, theta_old = _params(learner.rollout_policy), _params(learner.generator)
    _pg_step(learner)
    theta_new = _params(learner.generator)
    assert all(not torch.equal(a, b) for a, b in zip(theta_old, theta_new))  # θ moved
    assert all(torch.equal(a, b) for a, b in zip(beta_old, _params(learner.rollout_policy)))  # β did not
    learner.update_rollout_policy()
    for beta, b_old, t_new in zip(learner.rollout_policy.parameters(), beta_old, theta_new):
        torch.testing.assert_close(beta, 0.8 * b_old + 0.2 * t_new, rtol=1e-6, atol=1e-7)
        assert not torch.allclose(beta, t_new, rtol=0, atol=1e-7)  # β lags θ


def test_update_rate_zero_makes_beta_equal_theta():
    learner = GeneratorLearner(_cfg(0.0), seed=0)
    learner.sync_rollout_policy()
    _pg_step(learner)
    assert not torch.equal(learner.rollout_policy.W, learner.generator.W)
    learner.update_rollout_policy()
    for beta, theta in zip(learner.rollout_policy.parameters(), learner.generator.parameters()):
        assert torch.equal(beta, theta)


def test_pretrain_epochs_reduce_nll():
    cfg = _cfg()
    real = _real(cfg)
    learner = GeneratorLearner(cfg, seed=0)
    learner.set_data(real)
    before = learner.generator.nll(real)
    losses = [learner.pretrain_epoch() for _ in range(4)]
    after = learner.generator.nll(real)
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]
    assert after < before - 0.3, (before, after)
    assert after > seeded_oracle(cfg.data).nll(real) - 0.1  # cannot beat the oracle by much


def test_discriminator_trainer_stats():
    cfg = _cfg()
    trainer = DiscriminatorTrainer(cfg, seed=0)
    trainer.set_data(_real(cfg, 96))
    fake = GeneratorLearner(cfg, seed=0).sample(80)
    before = _params(trainer.discriminator)
    stats = trainer.train(fake, epochs=2)
    assert math.isfinite(stats.loss) and stats.loss > 0
    assert 0.0 <= stats.acc_real <= 1.0 and 0.0 <= stats.acc_fake <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(before, _params(trainer.discriminator)))


def test_rollout_worker_rewards():
    cfg = _cfg()
    learner, trainer = GeneratorLearner(cfg, seed=1), DiscriminatorTrainer(cfg, seed=2)
    worker = RolloutWorker(cfg, seed=3)
    worker.set_weights(learner.rollout_weights(), trainer.weights(), version=5)
    assert worker.version == 5
    assert torch.equal(worker.discriminator.out.weight, trainer.discriminator.out.weight)
    assert torch.equal(worker.policy.W, learner.rollout_policy.W)
    seqs = learner.sample(8)
    rewards = worker.rewards(seqs)
    assert rewards.shape == (8, 6)
    assert ((rewards >= 0) & (rewards <= 1)).all()
    torch.testing.assert_close(rewards[:, -1], trainer.discriminator.prob_real(seqs))


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)  # as a checkpoint or a Ray object would: a copy, not references
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@pytest.mark.parametrize("steps_after", [0, 1])
def test_learner_state_dict_roundtrip(steps_after):
    cfg = _cfg()
    real = _real(cfg, 128)
    a = GeneratorLearner(cfg, seed=0)
    a.set_data(real)
    a.pretrain_epoch()  # optimizer state and rng have moved
    state = _roundtrip(a.state_dict())
    b = GeneratorLearner(cfg, seed=42)
    b.set_data(real)
    assert not torch.equal(b.generator.W, a.generator.W)
    b.load_state_dict(state)
    for _ in range(steps_after):  # the optimizer state and the shuffling rng carry over too
        assert a.pretrain_epoch() == b.pretrain_epoch()
    assert torch.equal(a.sample(8), b.sample(8))
    assert torch.equal(a.rollout_policy.W, b.rollout_policy.W)


def test_a_random_state_from_another_device_type_reseeds_instead_of_failing():
    """A CUDA generator's state is 16 bytes, a CPU one's 5056: a run checkpointed on a GPU and
    resumed on a CPU gets a stream seeded from the saved state (the same one every time)."""
    from seqgan_ray.roles import restore_rng

    cuda_like = torch.arange(16, dtype=torch.uint8)
    a, b = torch.Generator(), torch.Generator()
    restore_rng(a, cuda_like)
    restore_rng(b, cuda_like)
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
    restore_rng(b, torch.arange(1, 17, dtype=torch.uint8))
    assert not torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
    same = torch.Generator().manual_seed(7)
    saved = same.get_state()
    expected = torch.rand(3, generator=same)
    restore_rng(a, saved)  # a state of this device type is restored exactly
    assert torch.equal(torch.rand(3, generator=a), expected)


@pytest.mark.parametrize("shuffle", [False, True])
def test_mle_epoch_walks_the_data_in_order_only_without_shuffle(shuffle):
    from seqgan_ray.losses import mle_loss

    cfg = _cfg()
    cfg.generator.shuffle = shuffle
    data = _real(cfg, 256)
    learner, twin = GeneratorLearner(cfg, seed=0), GeneratorLearner(cfg, seed=0)
    learner.set_data(data)
    learner.pretrain_epoch()
    for i in range(0, 256, 32):  # the reference code's loader: the file's batches, in order
        g = twin.generator
        twin._apply(mle_loss(g.log_probs(data[i:i + 32]), g.mask(data[i:i + 32])), twin.mle_opt)
    same = all(torch.equal(a, b) for a, b in zip(_params(learner.generator), _params(twin.generator)))
    assert same == (not shuffle)
