"""Eq. 4: the fast batched rewards against the plain loop, and the sampler's distribution."""

import pytest
import torch

from seqgan_ray.kernels.sampling import sample_categorical
from seqgan_ray.models.discriminator import Discriminator
from seqgan_ray.models.policy import LSTMPolicy
from seqgan_ray.rollout import (complete_prefixes, mc_rewards, mc_rewards_reference, rollout_prefixes,
                                rollout_uniforms)


def _policy(V=50, T=7, dtype=torch.float64):
    p = LSTMPolicy(V, 8, 8, T, start_token=0, init_std=1.0, chunk_rows=37)
    p.reset_parameters(1.0, torch.Generator().manual_seed(3))
    return p.to(dtype)


def _hash_score(seqs):
    """A deterministic stand-in discriminator that depends on every token and its place:
    any differently sampled token changes the score."""
    weights = torch.arange(1, seqs.shape[1] + 1, dtype=torch.float64) * 0.6180339887
    return torch.frac((seqs.double() * weights).sum(1) * 0.01 + 0.123)


def test_fast_rewards_equal_plain_loop_with_shared_randomness():
    B, T, N, V = 5, 7, 4, 50
    policy = _policy(V, T)
    seqs = policy.sample(B, generator=torch.Generator().manual_seed(0))
    u = rollout_uniforms(B, T, N, generator=torch.Generator().manual_seed(1)).double()
    fast = mc_rewards(policy, _hash_score, seqs, N, u=u)  # the policy samples in blocks of 37 rows
    plain = mc_rewards_reference(policy, _hash_score, seqs, N, u=u)
    assert fast.shape == (B, T)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-12)
    # the last reward is D of the whole sequence
    torch.testing.assert_close(fast[:, -1], _hash_score(seqs))


@pytest.mark.parametrize("stride", [2, 3, 6, 9])
def test_a_rollout_stride_rolls_out_every_cth_prefix_and_fills_the_tokens_between(stride):
    """rollout.stride c: the fast rewards equal the plain loop over the prefixes c, 2c, ... (the
    same uniforms, so the same completions as with stride 1 for those prefixes), and each token
    between takes the next rolled-out prefix's value, the last ones D of the whole sequence."""
    B, T, N, V = 5, 7, 4, 50
    policy = _policy(V, T)
    seqs = policy.sample(B, generator=torch.Generator().manual_seed(0))
    u = rollout_uniforms(B, T, N, generator=torch.Generator().manual_seed(1)).double()
    every = mc_rewards(policy, _hash_score, seqs, N, u=u)
    strided = mc_rewards(policy, _hash_score, seqs, N, u=u, stride=stride)
    torch.testing.assert_close(strided, mc_rewards_reference(policy, _hash_score, seqs, N, u=u, stride=stride),
                               rtol=0, atol=1e-12)
    for t in range(1, T + 1):  # prefix length t: the reward of token y_t (column t - 1)
        source = next((s for s in range(t, T) if s % stride == 0), T)  # the next rolled-out prefix
        torch.testing.assert_close(strided[:, t - 1], every[:, source - 1], rtol=0, atol=1e-12)


def test_d_scores_strided_rollouts_as_it_scores_whole_rows():
    B, T, N, V = 3, 9, 5, 20
    policy = _policy(V, T, torch.float32)
    d = Discriminator(V, T, emb_dim=6, filter_sizes=[1, 2, 4], num_filters=[3, 3, 3]).eval()
    seqs = policy.sample(B, generator=torch.Generator().manual_seed(0))
    u = rollout_uniforms(B, T, N, generator=torch.Generator().manual_seed(1))
    lengths = rollout_prefixes(T, 3)
    completions = complete_prefixes(policy, seqs, N, u, lengths=lengths)
    assert completions.shape == (len(lengths), N, B, T) and lengths == [3, 6]
    whole = d.prob_real(completions.reshape(-1, T)).view(len(lengths), N, B)
    torch.testing.assert_close(d.prob_real_rollouts(seqs, completions, lengths), whole, rtol=1e-5, atol=1e-6)


def test_fast_rewards_statistically_equal_with_real_discriminator():
    B, T, N, V = 4, 6, 64, 30
    policy = _policy(V, T, torch.float32)
    torch.manual_seed(0)
    disc = Discriminator(V, T, emb_dim=8, filter_sizes=[1, 2, 3], num_filters=[5, 5, 5]).eval()
    seqs = policy.sample(B, generator=torch.Generator().manual_seed(0))
    score = lambda x: disc.prob_real(x)
    fast = torch.stack([mc_rewards(policy, score, seqs, N, generator=torch.Generator().manual_seed(s))
                        for s in range(4)]).mean(0)
    u = rollout_uniforms(B, T, N, generator=torch.Generator().manual_seed(99))
    plain = mc_rewards_reference(policy, score, seqs, N, u=u)
    # independent randomness: means over 4*64 vs 64 completions agree within MC error
    assert (fast - plain).abs().max() < 0.05, (fast - plain).abs().max()
    torch.testing.assert_close(fast[:, -1], plain[:, -1])


def test_sampler_matches_softmax_distribution():
    V, R = 37, 200_000
    logits = torch.randn(V, generator=torch.Generator().manual_seed(0)) * 2
    u = torch.rand(R, 2, generator=torch.Generator().manual_seed(1))
    draws = sample_categorical(logits.expand(R, V), u, block=8)  # 8 does not divide 37: padding
    counts = torch.bincount(draws, minlength=V).double()
    expected = torch.softmax(logits.double(), 0) * R
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert counts.shape[0] == V
    assert chi2 < 80, chi2  # 36 dof: p < 1e-4 above ~70


def test_sampler_never_draws_zero_probability_tokens():
    logits = torch.full((1000, 10), -1e9)
    logits[:, 3] = 0.0
    u = torch.rand(1000, 2, generator=torch.Generator().manual_seed(0))
    assert (sample_categorical(logits, u, block=4) == 3).all()


def test_sampler_draws_the_same_tokens_whatever_the_logits_offset():
    """softmax ignores a constant added to a row. Logits near 0 take the CPU's path without the
    max subtraction; +200 (exp overflows) and -1000 (exp underflows) must fall back to it and
    draw the same tokens from the same uniforms (up to rounding at a block's edge)."""
    R, V = 20_000, 50
    logits = torch.randn(R, V, generator=torch.Generator().manual_seed(2)) * 3
    u = torch.rand(R, 2, generator=torch.Generator().manual_seed(3))
    base = sample_categorical(logits, u, block=7)
    for shift in (200.0, -1000.0):
        same = (sample_categorical(logits + shift, u, block=7) == base).float().mean().item()
        assert same > 0.999, (shift, same)


def test_prefix_shared_scoring_equals_scoring_every_row():
    """D's rollout scoring computes the windows inside each kept prefix once per sequence;
    it must give the same P(real) as scoring every completion whole, in both precisions, for
    fixed-length and <eos>-padded sequences, with more rows than one block."""
    from seqgan_ray.rollout import complete_prefixes

    B, T, N, V = 6, 9, 5, 40
    for eos in (None, 2):
        policy = LSTMPolicy(V, 8, 8, T, eos_token=eos)
        policy.reset_parameters(1.0, torch.Generator().manual_seed(3))
        seqs = policy.sample(B, generator=torch.Generator().manual_seed(0))
        completions = complete_prefixes(policy, seqs, N, rollout_uniforms(B, T, N, generator=torch.Generator().manual_seed(1)))
        if eos is not None:
            assert (completions == 0).any()  # some rows ended early and are padded
        for precision in ("float32", "bfloat16"):
            d = Discriminator(V, T, emb_dim=8, filter_sizes=[1, 2, 4, 9], num_filters=[5, 6, 7, 3],
                              precision=precision, seed=4)
            whole = d.prob_real(completions.reshape(-1, T)).view(T - 1, N, B)
            shared = d.prob_real_rollouts(seqs, completions, chunk_rows=7)  # 7 does not divide N·B
            torch.testing.assert_close(shared, whole, rtol=0, atol=1e-6)
            rewards = mc_rewards(policy, d.prob_real, seqs, N, u=rollout_uniforms(B, T, N, generator=torch.Generator().manual_seed(1)),
                                 score_rollouts=d.prob_real_rollouts)
            torch.testing.assert_close(rewards[:, :-1], whole.mean(1).t(), rtol=0, atol=1e-6)
            torch.testing.assert_close(rewards[:, -1], d.prob_real(seqs))
