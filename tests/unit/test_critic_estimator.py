"""rollout.estimator critic: the value net's advantages and loss against hand computations, its
reading of prefixes only, the learner's step, and the config checks."""

import copy

import pytest
import torch

from seqgan_ray.config import ConfigError, config_from_dict
from seqgan_ray.models.value import PrefixValue, critic_advantages, value_loss
from seqgan_ray.roles import GeneratorLearner, make_discriminator
from tests.conftest import TINY


def critic_cfg(**sections):
    data = copy.deepcopy(TINY)
    data["rollout"] = {**data["rollout"], "estimator": "critic"}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return config_from_dict(data)


def test_advantages_replace_the_monte_carlo_estimate_by_the_next_prefix_value():
    values = torch.tensor([[0.5, 0.6, 0.2, 0.9]])  # V of the prefixes of length 0..3
    scores = torch.tensor([0.7])                    # D(Y)
    adv = critic_advantages(values, scores)
    assert torch.allclose(adv, torch.tensor([[0.1, -0.4, 0.5]]))  # Q = [V1, V2, D(Y)] − [V0, V1, V2]
    assert adv.sum().item() == pytest.approx(0.7 - 0.5)  # telescopes to D(Y) − V(nothing)


def test_value_loss_fits_every_prefix_to_the_sequences_score():
    values = torch.tensor([[0.5, 0.6, 0.2, 0.9]])
    scores = torch.tensor([0.7])
    assert value_loss(values, scores).item() == pytest.approx((0.04 + 0.01 + 0.25) / 3)
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the last token is padding after <eos>
    assert value_loss(values, scores, mask).item() == pytest.approx((0.04 + 0.01) / 2)


def test_a_prefix_value_reads_only_its_prefix():
    net = PrefixValue(40, 8, 8, 0)
    seqs = torch.randint(0, 40, (5, 6))
    other = seqs.clone()
    other[:, 4] = (other[:, 4] + 1) % 40
    a, b = net(seqs), net(other)
    assert a.shape == (5, 7) and torch.equal(a[:, :5], b[:, :5]) and not torch.equal(a[:, 5:], b[:, 5:])


def test_learner_step_moves_g_and_fits_the_value_net():
    cfg = critic_cfg(rollout={"critic_lr": 0.01})
    learner = GeneratorLearner(cfg, 0)
    learner.set_critic(make_discriminator(cfg, 3).state_dict())
    seqs = learner.sample(32)
    theta = [p.clone() for p in learner.generator.parameters()]
    first = learner.critic_pg_step(seqs)
    losses = [learner.critic_pg_step(seqs).stats["critic/loss"] for _ in range(30)]
    assert losses[-1] < 0.5 * first.stats["critic/loss"]
    assert any(not torch.equal(a, b) for a, b in zip(theta, learner.generator.parameters()))
    other = GeneratorLearner(cfg, 1)  # the value net and its optimizer are checkpointed
    other.load_state_dict(learner.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(other.value_net.parameters(), learner.value_net.parameters()))


@pytest.mark.parametrize("sections", [
    {"rollout": {"estimator": "td"}},
    {"train": {"method": "textgan"}, "generator": {"kind": "latent_lstm"}},
    {"train": {"method": "maskgan"}},
    {"rollout": {"reward": "bleu"}},
])
def test_the_critic_estimator_is_refused_where_there_is_no_per_token_reward(sections):
    with pytest.raises(ConfigError, match=r"rollout\.estimator") as info:
        critic_cfg(**sections)
    assert "\n" not in str(info.value)


def test_critic_steps_take_more_value_steps_on_fresh_samples():
    """rollout.critic_steps: one G step, then that many value-net steps (the first on its batch)."""
    for steps in (1, 4):
        cfg = critic_cfg(rollout={"critic_steps": steps})
        learner = GeneratorLearner(cfg, 0)
        learner.set_critic(make_discriminator(cfg, 3).state_dict())
        rng_before = learner.rng.get_state()
        learner.critic_pg_step(learner.sample(16))
        pg_steps = {int(s["step"]) for s in learner.pg_opt.state.values()}
        value_steps = {int(s["step"]) for s in learner.value_opt.state.values()}
        assert pg_steps == {1} and value_steps == {steps}
        assert steps == 1 or not torch.equal(rng_before, learner.rng.get_state())
