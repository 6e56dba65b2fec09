"""K seeds as one stacked model equal K separate runs: MLE, policy-gradient and D steps, float32, 1e-5."""

import pytest
import torch

from seqgan_ray import batched
from seqgan_ray.batched import (StackedAdam, StackedDiscriminator, StackedLSTMPolicy, discriminator_step, mle_step,
                                policy_gradient_step)
from seqgan_ray.losses import discriminator_loss, policy_gradient_loss
from seqgan_ray.models.discriminator import Discriminator
from seqgan_ray.models.policy import LSTMPolicy
from seqgan_ray.roles import clip_gradients
from seqgan_ray.roles import mle_step as separate_mle_step

V, T, B, K, STEPS = 13, 7, 6, 3, 4


@pytest.fixture(autouse=True, params=["per-run kernels", "all batched"])
def path(request, monkeypatch):
    """Both ways a stacked model computes: on CPU, its big products one run at a time through the
    training code's kernels; elsewhere (a GPU) all as batched products."""
    monkeypatch.setattr(batched, "PER_RUN_KERNELS_ON_CPU", request.param == "per-run kernels")
    return request.param
LRS = [0.01, 0.02, 0.005]   # a learning rate a run: a sweep over it is one stacked model too


def _policies():
    out = []
    for seed in range(K):
        p = LSTMPolicy(V, 5, 6, T)
        p.reset_parameters(0.3, torch.Generator().manual_seed(seed))
        out.append(p)
    return out


def _batches(seed, shape, high=V):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, high, shape, generator=g) for _ in range(STEPS)]


def _close(stacked, separate):
    for k, model in enumerate(separate):
        ours = stacked.unstacked(k)
        for name, theirs in model.state_dict().items():
            torch.testing.assert_close(ours[name], theirs, rtol=1e-5, atol=1e-5, msg=f"run {k}, {name}")


@pytest.mark.parametrize("grad_clip, lrs", [(0.05, LRS),          # every run clipped at its own norm
                                             (100.0, LRS),          # none clipped
                                             (0.05, [0.01] * K)])   # one rate: one Adam call for all runs
def test_stacked_mle_steps_equal_separate_runs(grad_clip, lrs):
    separate = _policies()
    stacked = StackedLSTMPolicy(separate)
    opts = [torch.optim.Adam(p.parameters(), lr=lr, fused=True) for p, lr in zip(separate, lrs)]
    stacked_opt = StackedAdam(list(stacked.parameters()), lrs)
    for batch in _batches(1, (K, B, T)):
        losses = [separate_mle_step(p, o, b, grad_clip).item() for p, o, b in zip(separate, opts, batch)]
        torch.testing.assert_close(mle_step(stacked, stacked_opt, batch, grad_clip), torch.tensor(losses))
    _close(stacked, separate)
    assert not torch.equal(stacked.W[0], stacked.W[1])   # the runs stayed their own


def test_stacked_policy_gradient_steps_equal_separate_runs():
    separate = _policies()
    stacked = StackedLSTMPolicy(separate)
    opts = [torch.optim.Adam(p.parameters(), lr=lr, fused=True) for p, lr in zip(separate, LRS)]
    stacked_opt = StackedAdam(list(stacked.parameters()), LRS)
    g = torch.Generator().manual_seed(2)
    for seqs in _batches(3, (K, B, T)):
        rewards = torch.rand(K, B, T, generator=g)
        for p, o, s, r in zip(separate, opts, seqs, rewards):
            o.zero_grad(set_to_none=True)
            policy_gradient_loss(p.log_probs(s), r).backward()
            clip_gradients(p, 5.0)
            o.step()
        policy_gradient_step(stacked, stacked_opt, seqs, rewards, 5.0)
    _close(stacked, separate)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_stacked_discriminator_steps_equal_separate_runs_dropout_included(precision):
    separate = [Discriminator(V, T, emb_dim=4, filter_sizes=[1, 2, 4], num_filters=[3, 5, 2], dropout=0.25, seed=s,
                              precision=precision) for s in range(K)]
    stacked = StackedDiscriminator(separate)
    opts = [torch.optim.Adam(d.parameters(), lr=lr, fused=True) for d, lr in zip(separate, LRS)]
    stacked_opt = StackedAdam(list(stacked.parameters()), LRS)
    ours_rng = [torch.Generator().manual_seed(10 + k) for k in range(K)]
    their_rng = [torch.Generator().manual_seed(10 + k) for k in range(K)]
    labels = _batches(4, (K, B), high=2)
    for x, y in zip(_batches(5, (K, B, T)), labels):
        for d, o, xb, yb, g in zip(separate, opts, x, y, their_rng):
            d.train()
            o.zero_grad(set_to_none=True)
            discriminator_loss(d(xb, generator=g), yb, d.out.weight, d.out.bias, 0.2).backward()
            o.step()
        stacked.train()
        discriminator_step(stacked, stacked_opt, x, y, 0.2, ours_rng)
    _close(stacked, separate)
    stacked.eval()
    x = _batches(6, (K, B, T))[0]
    for k, d in enumerate(separate):
        d.eval()
        torch.testing.assert_close(stacked(x)[k], d(x[k]), rtol=1e-5, atol=1e-5)


def test_models_that_differ_in_shape_are_refused():
    a, b = LSTMPolicy(V, 5, 6, T), LSTMPolicy(V, 5, 8, T)
    with pytest.raises(ValueError, match="share one shape"):
        StackedLSTMPolicy([a, b])
    with pytest.raises(ValueError, match="fixed-length"):
        StackedLSTMPolicy([LSTMPolicy(V, 5, 6, T, eos_token=1)] * 2)
    with pytest.raises(ValueError, match="one precision"):
        StackedDiscriminator([Discriminator(V, T, emb_dim=4, filter_sizes=[1], num_filters=[2], precision=p)
                              for p in ("float32", "bfloat16")])


def _discriminators(precision="float32"):
    return [Discriminator(V, T, emb_dim=4, filter_sizes=[1, 2, 4], num_filters=[3, 5, 2], dropout=0.25, seed=s,
                          precision=precision) for s in range(K)]


def test_stacked_sampling_draws_each_runs_own_sequences():
    separate = _policies()
    stacked = StackedLSTMPolicy(separate)
    ours = stacked.sample(9, [torch.Generator().manual_seed(20 + k) for k in range(K)])
    theirs = torch.stack([p.sample(9, generator=torch.Generator().manual_seed(20 + k)) for k, p in enumerate(separate)])
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("stride, precision", [(1, "float32"), (3, "float32"), (1, "bfloat16")])
def test_stacked_rewards_equal_each_runs_own_rollouts_and_d(stride, precision):
    """Eq. 4 for K runs at once: run k's completions by its own β with its own uniforms, scored
    by its own D, as the rollout worker computes them one run at a time."""
    from seqgan_ray.rollout import mc_rewards as separate_rewards

    policies, discs = _policies(), _discriminators(precision)
    seqs = torch.stack([p.sample(B, generator=torch.Generator().manual_seed(k)) for k, p in enumerate(policies)])
    ours = batched.mc_rewards(StackedLSTMPolicy(policies), StackedDiscriminator(discs), seqs, 4,
                              [torch.Generator().manual_seed(30 + k) for k in range(K)], stride=stride)
    for k, (p, d) in enumerate(zip(policies, discs)):
        theirs = separate_rewards(p, d.prob_real, seqs[k], 4, generator=torch.Generator().manual_seed(30 + k),
                                  score_rollouts=d.prob_real_rollouts, stride=stride)
        torch.testing.assert_close(ours[k], theirs, rtol=1e-5, atol=1e-6)


def test_stacked_d_training_equals_each_runs_discriminator_trainer():
    """Epochs over real and fake, shuffled together: each run's order and dropout from its own
    generator, as roles.DiscriminatorTrainer draws them."""
    from seqgan_ray.config import config_from_dict
    from seqgan_ray.roles import DiscriminatorTrainer
    from tests.helpers import TINY

    cfg = config_from_dict(TINY)
    dc, Vt, Tt = cfg.discriminator, cfg.data.vocab_size, cfg.data.seq_len
    trainers = [DiscriminatorTrainer(cfg, seed) for seed in range(K)]
    stacked = StackedDiscriminator([t.discriminator for t in trainers])
    opt = StackedAdam(list(stacked.parameters()), [dc.lr] * K)
    rngs = [torch.Generator().manual_seed(seed + 1) for seed in range(K)]   # DiscriminatorTrainer's
    g = torch.Generator().manual_seed(7)
    real = torch.randint(0, Vt, (K, 40, Tt), generator=g)
    fake = torch.randint(0, Vt, (K, 30, Tt), generator=g)
    stacked_stats = batched.train_discriminator(stacked, opt, real, fake, 2, dc.batch_size, dc.l2_reg, rngs)
    for k, t in enumerate(trainers):
        stats = t.train(fake[k], 2, real=real[k])
        assert stacked_stats.loss[k].item() == pytest.approx(stats.loss, rel=1e-5)
        assert stacked_stats.acc_real[k].item() == pytest.approx(stats.acc_real, abs=1e-6)
        assert stacked_stats.acc_fake[k].item() == pytest.approx(stats.acc_fake, abs=1e-6)
    _close(stacked, [t.discriminator for t in trainers])


def test_a_stacked_seqgan_iteration_equals_each_runs_iteration_with_its_roles():
    """Algorithm 1's iteration of K runs at once, against each run's own GeneratorLearner,
    RolloutWorker and DiscriminatorTrainer doing what algorithms.seqgan does with them."""
    from seqgan_ray.config import config_from_dict
    from seqgan_ray.roles import DiscriminatorTrainer, GeneratorLearner, RolloutWorker
    from tests.helpers import TINY

    sections = {k: dict(v) for k, v in TINY.items()}
    sections["train"].update(g_steps=2, d_steps=2, k_epochs=2, num_negatives=24)
    sections["rollout"].update(num_rollouts=3, update_rate=0.8)
    cfg = config_from_dict(sections)
    V_, T_ = cfg.data.vocab_size, cfg.data.seq_len
    real = torch.randint(0, V_, (K, 20, T_), generator=torch.Generator().manual_seed(9))

    def roles(seed):
        learner, disc, worker = GeneratorLearner(cfg, seed), DiscriminatorTrainer(cfg, seed), RolloutWorker(cfg, 50 + seed)
        learner.sync_rollout_policy()
        return learner, disc, worker

    def separate_iteration(learner, disc, worker, *reals):
        losses = []
        for _ in range(cfg.train.g_steps):
            worker.set_weights(learner.rollout_weights(), disc.weights())
            seqs = learner.sample(cfg.generator.batch_size)
            losses.append(learner.pg_step(seqs, worker.rewards(seqs)).loss)
        learner.update_rollout_policy()
        for i in range(cfg.train.d_steps):
            stats = disc.train(learner.sample(cfg.train.num_negatives), cfg.train.k_epochs, real=reals[i % len(reals)])
        return sum(losses) / len(losses), stats

    separate = [roles(seed) for seed in range(K)]
    for k, run in enumerate(separate):   # an iteration first: the stacked runs take over Adam's moments too
        separate_iteration(*run, real[k])
    copies = roles_copy(separate)
    stacked = batched.StackedSeqGAN(cfg, *[list(r) for r in zip(*copies)])
    metrics = stacked.iteration([real, real.flip(1)])   # D step i against real[i]
    for k, run in enumerate(separate):
        pg_loss, stats = separate_iteration(*run, real[k], real[k].flip(0))
        assert metrics["disc/loss"][k].item() == pytest.approx(stats.loss, rel=1e-5)
        assert metrics["disc/acc_fake"][k].item() == pytest.approx(stats.acc_fake, abs=1e-6)
        assert metrics["gen/pg_loss"][k].item() == pytest.approx(pg_loss, rel=1e-4)
    run = stacked.runs()
    stacked.give_back()   # into the copies' roles: weights and both Adams, as the separate runs hold them
    for k, ((learner, disc, _), (own_learner, own_disc, _)) in enumerate(zip(separate, copies)):
        for name, model, given in (("generator", learner.generator, own_learner.generator),
                                   ("rollout_policy", learner.rollout_policy, own_learner.rollout_policy),
                                   ("discriminator", disc.discriminator, own_disc.discriminator)):
            for key, theirs in model.state_dict().items():
                torch.testing.assert_close(run[k][name][key], theirs, rtol=1e-5, atol=1e-5, msg=f"{k} {name} {key}")
                torch.testing.assert_close(given.state_dict()[key], theirs, rtol=1e-5, atol=1e-5, msg=f"{k} {key}")
        for opt, own_opt in ((learner.pg_opt, own_learner.pg_opt), (disc.opt, own_disc.opt)):
            for p, own_p in zip(opt.param_groups[0]["params"], own_opt.param_groups[0]["params"]):
                for key in ("exp_avg", "exp_avg_sq", "step"):
                    torch.testing.assert_close(own_opt.state[own_p][key], opt.state[p][key], rtol=1e-5, atol=1e-6)


def roles_copy(separate):
    """Copies of each run's learner and D trainer (weights, optimiser state, streams), and its
    rollout worker's stream: what the stacked runs take over."""
    import copy

    out = []
    for learner, disc, worker in separate:
        out.append((copy.deepcopy(learner), copy.deepcopy(disc), copy.deepcopy(worker.rng)))
    return out
