"""Tests that would catch a wiring bug: every copy of D equals D after a D round, D's accuracy
on sequences it never trained on rises in a short LeakGAN loop and is reported, and G's gradient
through RelGAN's frozen copy of D is the true one (finite differences)."""

import copy
import math

import pytest
import torch

from seqgan_ray.algorithms.leakgan import LeakGAN
from seqgan_ray.algorithms.relaxed import RelGAN, generator_objective
from seqgan_ray.config import config_from_dict
from seqgan_ray.roles import DiscriminatorTrainer, GeneratorLearner
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import Trainer, local_roles, train
from tests.conftest import TINY
from tests.unit.test_leakgan import leakgan_sections
from tests.unit.test_relaxed import relgan_cfg


def assert_same_weights(state: dict, reference: dict, what: str) -> None:
    assert state.keys() == reference.keys(), what
    for key, value in reference.items():
        assert torch.equal(state[key].cpu(), value.cpu()), f"{what}: {key} differs from D's"


def leakgan_trainer(tmp_path, **overrides) -> Trainer:
    cfg = config_from_dict(leakgan_sections(**overrides))
    trainer = Trainer(cfg, load_task(cfg.data), local_roles(cfg, rollout_workers=2), tmp_path)
    trainer.learner.set_critic(trainer.disc.weights())
    return trainer


def test_after_a_d_round_every_copy_of_d_equals_d(tmp_path):
    """LeakGAN: after a D round, the copies of D inside G, inside the rollout policy and on every
    rollout worker (which samples negatives and scores rewards with it) hold D's weights."""
    trainer = leakgan_trainer(tmp_path)
    before = trainer.disc.weights()
    trainer.d_round(1)
    d = trainer.disc.weights()
    assert any(not torch.equal(d[k], before[k]) for k in d), "the D round did not train D"
    assert_same_weights(trainer.learner.generator.leak.state_dict(), d, "G's copy")
    assert_same_weights(trainer.learner.rollout_policy.leak.state_dict(), d, "the rollout policy's copy")
    trainer.generator_samples(8)  # G (with its copy of D) goes to the pool before each use
    for i, worker in enumerate(trainer.pool.workers):
        assert_same_weights(worker.discriminator.state_dict(), d, f"rollout worker {i}'s copy")
        assert worker.discriminator is worker.policy.leak  # it scores with the D it samples through


def test_after_a_relaxed_iteration_each_role_holds_the_others_network(tmp_path):
    """RelGAN: after an iteration, the learner's frozen copy of D equals D and the discriminator
    trainer's copy of G equals G (each refreshed once an iteration)."""
    cfg = relgan_cfg()
    trainer = Trainer(cfg, load_task(cfg.data), local_roles(cfg), tmp_path)
    algorithm = RelGAN()
    algorithm.start(trainer, fresh=True)
    algorithm.iteration(trainer, 1)
    assert_same_weights(trainer.learner.critic.state_dict(), trainer.disc.weights(), "G's copy of D")
    assert_same_weights(trainer.disc.opponent.state_dict(), trainer.learner.weights(), "D's copy of G")
    assert not any(p.requires_grad for p in trainer.learner.critic.parameters())


def test_d_heldout_accuracy_rises_in_a_short_leakgan_loop(tmp_path):
    """D's accuracy on fresh oracle samples against fresh G samples, neither trained on, starts
    near chance and rises over a few LeakGAN iterations (5 D rounds each): D is trained on the
    right labels, and the samples it is scored on reach it."""
    trainer = leakgan_trainer(tmp_path, **{"discriminator.lr": 1e-3, "discriminator.l2_reg": 0.0,
                                           "train.num_negatives": 256, "train.d_steps": 5})
    trainer.phase = "adversarial"
    fake = trainer.generator_samples(512)
    before = trainer.d_heldout(fake, 0)["eval/d_heldout_acc"]
    algorithm = LeakGAN()
    algorithm.start(trainer, fresh=True)
    for it in (1, 2, 3):
        metrics, _ = algorithm.iteration(trainer, it)
    after = trainer.d_heldout(trainer.generator_samples(512), 3)["eval/d_heldout_acc"]
    assert abs(before - 0.5) < 0.1 and after > before + 0.1, (before, after, metrics)


def test_d_heldout_acc_is_logged_and_summarised_for_methods_with_a_d(tmp_path):
    """eval/d_heldout_acc at every evaluation of a method that trains D, at the end of D's
    pretraining, and in the summary (after pretraining and after the run); none for MLE."""
    from seqgan_ray.runlog import read_metrics

    sections = {k: dict(v) for k, v in TINY.items()}
    cfg = config_from_dict(sections)
    result = train(cfg, load_task(cfg.data), local_roles(cfg), tmp_path / "seqgan")
    s = result.summary
    assert 0 <= s["d_heldout_acc_after_pretraining"] <= 1 and 0 <= s["d_heldout_acc_after_adversarial"] <= 1
    # beside it, on training sequences against the same fakes
    assert 0 <= s["d_trainset_acc_after_pretraining"] <= 1 and 0 <= s["d_trainset_acc_after_adversarial"] <= 1
    records = read_metrics(tmp_path / "seqgan" / "metrics.jsonl")
    assert any(r["phase"] == "pretrain_d" and "eval/d_heldout_acc" in r for r in records)
    assert all("eval/d_heldout_acc" in r for r in records if r["phase"] == "adversarial" and "eval/oracle_nll" in r)
    sections["train"] = {**sections["train"], "method": "mle"}
    cfg = config_from_dict(sections)
    s = train(cfg, load_task(cfg.data), local_roles(cfg), tmp_path / "mle").summary
    assert s["d_heldout_acc_after_adversarial"] is None and s["d_heldout_acc_after_pretraining"] is None


def test_heldout_accuracy_is_the_mean_hit_rate_or_the_share_of_pairs_ranked_right():
    cfg = config_from_dict({k: dict(v) for k, v in TINY.items()})
    disc = DiscriminatorTrainer(cfg, 0)
    seqs = torch.randint(0, cfg.data.vocab_size, (50, cfg.data.seq_len))
    with torch.no_grad():
        disc.discriminator.out.bias.copy_(torch.tensor([-100.0, 100.0]))  # "real" for everything
    assert disc.heldout_accuracy(seqs, seqs) == pytest.approx(0.5)  # all real right, all fake wrong
    disc = DiscriminatorTrainer(relgan_cfg(), 0)
    assert disc.heldout_accuracy(seqs[:, :8] % 40, seqs[:, :8] % 40) == 0.0  # ties are not ranked right


def test_generators_gradient_through_relgans_frozen_copy_of_d_matches_finite_differences():
    """G's adversarial gradient, taken through the learner's frozen copy of RelGAN's D (the same
    Gumbel noise and dropout each time), equals a central finite difference of the loss, in float64;
    the copy scores as D itself does and gets no gradient."""
    cfg = relgan_cfg()
    learner, disc = GeneratorLearner(cfg, 0), DiscriminatorTrainer(cfg, 10)
    learner.set_critic(disc.weights())
    g, critic = learner.generator.double(), learner.critic.double()
    d = copy.deepcopy(disc.discriminator).double()
    real = learner.sample(16)

    def loss(through) -> torch.Tensor:
        return generator_objective(g, through, torch.Generator().manual_seed(7), real, 2.0, "rsgan", "hard")

    assert loss(critic).item() == pytest.approx(loss(d).item(), abs=1e-12)
    g.zero_grad()
    loss(critic).backward()
    assert all(p.grad is None for p in critic.parameters())
    for param in (g.W_out, g.embedding):
        direction = torch.randn(param.shape, generator=torch.Generator().manual_seed(1), dtype=param.dtype)
        analytic = (param.grad * direction).sum().item()
        eps = 1e-6
        with torch.no_grad():
            param += eps * direction
            up = loss(critic).item()
            param -= 2 * eps * direction
            down = loss(critic).item()
            param += eps * direction
        numeric = (up - down) / (2 * eps)
        assert math.isclose(analytic, numeric, rel_tol=1e-5, abs_tol=1e-9), (analytic, numeric)


def test_the_heldout_accuracy_leaves_the_training_streams_alone(tmp_path):
    cfg = config_from_dict({k: dict(v) for k, v in TINY.items()})
    trainer = Trainer(cfg, load_task(cfg.data), local_roles(cfg), tmp_path)
    states = trainer.learner.rng.get_state(), trainer.disc.rng.get_state(), trainer.data_rng.get_state()
    fake = trainer.learner.sample(64, seed=5)
    trainer.d_heldout(fake, 1)
    after = trainer.learner.rng.get_state(), trainer.disc.rng.get_state(), trainer.data_rng.get_state()
    assert all(torch.equal(a, b) for a, b in zip(states, after))
    assert torch.equal(fake, trainer.learner.sample(64, seed=5))
