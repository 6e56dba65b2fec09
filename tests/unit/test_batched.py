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


def test_stacked_discriminator_steps_equal_separate_runs_dropout_included():
    separate = [Discriminator(V, T, emb_dim=4, filter_sizes=[1, 2, 4], num_filters=[3, 5, 2], dropout=0.25, seed=s)
                for s in range(K)]
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
    with pytest.raises(ValueError, match="float32"):
        StackedDiscriminator([Discriminator(V, T, emb_dim=4, filter_sizes=[1], num_filters=[2], precision="bfloat16")])
