"""Eq. 4: Monte Carlo rewards from every prefix, by the rollout policy G_β.

    Q(Y_1:t−1, y_t) = 1/N Σ_n D(Y^n_1:T),  Y^n ~ MC^{G_β}(Y_1:t; N)   for t < T
    Q(Y_1:T−1, y_T) = D(Y_1:T)                                         for t = T

`mc_rewards` is the fast way: one teacher-forced pass of β over the batch caches the state
of every prefix; N completions branch from each cached state, and all (T−1)·N·B of them
advance together, a prefix joining the batch at the step where its completion starts
(triangular batching: ~N·B·T²/2 policy steps instead of ~N·B·T²). It asks of the policy only
what the `RolloutPolicy` protocol names, so any generator with a per-row state can use it. The completions are then
scored by D in blocks. `mc_rewards_reference` is the plain loop over n and t that recomputes
each prefix, as the reference code does; a test checks the two agree exactly.

Both draw token y at (rollout n, prefix length t, position p, sequence b) with the uniforms
u[n, t−1, p, b] (shape (N, T−1, T, B, 2)), so given the same `u` they sample the same tokens.
"""

from __future__ import annotations

import bisect
from typing import Callable, Protocol

import torch
from torch import Tensor

from .kernels.sampling import sample_categorical
from .models.policy import LSTMPolicy

ScoreFn = Callable[[Tensor], Tensor]  # (R, T) token ids -> (R,) P(real)
RolloutScoreFn = Callable[[Tensor, Tensor, list[int]], Tensor]  # seqs (B, T), completions (L, N, B, T), lengths -> (L, N, B)
State = tuple[Tensor, ...]  # a policy's state for R rows: tensors whose first dimension is the row


class RolloutPolicy(Protocol):
    """What Eq. 4's completions need of a generator (`models.policy.LSTMPolicy` is one, with
    state (h, c)). A state is a tuple of tensors with the row first, so that rows can be
    repeated and joined without knowing what the tensors mean."""

    def prefix_states(self, seqs: Tensor) -> State:
        """The state after every prefix of `seqs` (B, T): tensors (B, T, ...), [:, p] having read
        the start token and y_0..y_{p−1}, ready to draw y_p."""

    def step(self, tokens: Tensor, state: State) -> State:
        """The state after reading `tokens` (R,)."""

    def sample_next(self, state: State, u: Tensor) -> Tensor:
        """The next token (R,) drawn from `state` with uniforms `u` (R, 2)."""

    def finish(self, seqs: Tensor) -> Tensor:
        """Sequences (R, T) as the policy emits them (e.g. PAD after an end token)."""


def rollout_uniforms(batch: int, seq_len: int, num_rollouts: int, *,
                     generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
    return torch.rand(num_rollouts, seq_len - 1, seq_len, batch, 2, generator=generator, device=device)


def rollout_prefixes(seq_len: int, stride: int = 1) -> list[int]:
    """The prefix lengths Eq. 4 rolls out from with rollout.stride c: c, 2c, ... below T (all of
    1..T−1 for c = 1)."""
    return list(range(stride, seq_len, stride))


def reward_columns(seq_len: int, lengths: list[int]) -> list[int]:
    """For each token position j < T−1 (prefix length t = j + 1), which rolled-out prefix gives
    its reward: the shortest one of `lengths` at least t long, or len(lengths) for the whole
    sequence's score when there is none. Stride c: token t takes the Monte Carlo estimate from
    the prefix that ends at the next multiple of c (LeakGAN's rule); after the last multiple,
    D of the whole sequence. Stride 1 is Eq. 4 exactly."""
    return [bisect.bisect_left(lengths, t) for t in range(1, seq_len)]


@torch.no_grad()
def complete_prefixes(policy: RolloutPolicy, seqs: Tensor, num_rollouts: int, u: Tensor, *,
                      lengths: list[int] | None = None) -> Tensor:
    """Sample N completions of proper prefixes of `seqs` (B, T) with `policy`: of every one, or of
    those `lengths` long (ascending; rollout_prefixes for a stride).

    Returns (L, N, B, T) for L prefix lengths: [i, n, b] keeps y_0..y_{t−1} of sequence b, for
    t = lengths[i], and samples the rest, with the uniforms u[n, t−1] whatever the other lengths.

    A policy whose tokens carry more axes after the position (K runs stacked: seqs (B, T, K),
    u (N, T−1, T, B, K, 2); `batched.StackedLSTMPolicy`) gets completions (L, N, B, T, K).
    """
    B, T, *extra = seqs.shape
    N = num_rollouts
    lengths = list(range(1, T)) if lengths is None else list(lengths)
    out = seqs.expand(len(lengths), N, *seqs.shape).reshape(len(lengths) * N * B, T, *extra).clone()  # rows (t, n, b)
    if not lengths:
        return out.view(0, N, B, T, *extra)
    prefixes = policy.prefix_states(seqs)  # each (B, T, ...): [:, t] draws y_t
    which = torch.tensor(lengths, device=u.device) - 1  # u's index of each prefix length
    state = None
    prev = None  # tokens sampled at the last position, for the rows already started
    started = 0  # prefixes whose completion has begun
    for p in range(lengths[0], T):
        # Rows of prefixes shorter than p step from their previous token; the prefix of
        # length p, if it is rolled out, joins with its cached teacher-forced state, N times.
        if state is not None:
            state = policy.step(prev, state)
        if started < len(lengths) and lengths[started] == p:
            joining = tuple(s[:, p].repeat(N, *[1] * (s.dim() - 2)) for s in prefixes)  # each (N*B, ...)
            state = joining if state is None else tuple(torch.cat([a, b]) for a, b in zip(state, joining))
            started += 1
        rows = started * N * B
        up = u[:, which[:started], p].transpose(0, 1).reshape(rows, *extra, 2)  # (rows, ..., 2) in (t, n, b) order
        prev = policy.sample_next(state, up)
        out[:rows, p] = prev
    return policy.finish(out).view(len(lengths), N, B, T, *extra)


@torch.no_grad()
def mc_rewards(policy: RolloutPolicy, score: ScoreFn, seqs: Tensor, num_rollouts: int, *,
               u: Tensor | None = None, generator: torch.Generator | None = None,
               score_rollouts: RolloutScoreFn | None = None, stride: int = 1) -> Tensor:
    """Eq. 4 for every token of `seqs` (B, T). Returns rewards (B, T).

    With `stride` c > 1, Monte Carlo rollouts only from prefixes of length c, 2c, ... and each
    token takes the estimate of the next of them (`reward_columns`): about 1/c of the work.
    `score_rollouts(seqs, completions, lengths)`, when given, scores the completions
    (L, N, B, T) of the prefixes `lengths` long knowing their structure (D's shares the work of
    the windows inside each prefix); otherwise `score` scores them as plain rows."""
    B, T = seqs.shape
    N = num_rollouts
    if u is None:
        u = rollout_uniforms(B, T, N, generator=generator, device=seqs.device)
    lengths = rollout_prefixes(T, stride)
    completions = complete_prefixes(policy, seqs, N, u, lengths=lengths)
    L = len(lengths)
    if score_rollouts is not None:
        q, last = score_rollouts(seqs, completions, lengths).mean(dim=1), score(seqs)  # (L, B), (B,)
    else:
        scores = score(torch.cat([completions.reshape(-1, T), seqs]))  # (L·N·B + B,)
        q, last = scores[:-B].view(L, N, B).mean(dim=1), scores[-B:]
    table = torch.cat([q, last[None]])  # (L + 1, B): each rolled-out prefix's estimate, then D(Y)
    return torch.cat([table[reward_columns(T, lengths)].t(), last[:, None]], dim=1)  # (B, T)


@torch.no_grad()
def mc_rewards_reference(policy: LSTMPolicy, score: ScoreFn, seqs: Tensor, num_rollouts: int, *,
                         u: Tensor, stride: int = 1) -> Tensor:
    """Eq. 4 written the plain way: for each n and t, re-run the prefix, sample the rest. With
    `stride` c, only the prefixes c, 2c, ... long; each token then takes the next one's value."""
    B, T = seqs.shape
    rewards = torch.zeros(B, T, dtype=torch.float64)
    for n in range(num_rollouts):
        for t in range(1, T):
            if t % stride:
                continue
            state = policy.initial_state(B)
            tok = torch.full((B,), policy.start_token, dtype=torch.long)
            seq = seqs[:, :t].clone()
            for p in range(t):  # feed the given prefix
                state = policy.step(tok, state)
                tok = seqs[:, p]
            for p in range(t, T):  # sample the completion
                state = policy.step(tok, state)
                tok = sample_categorical(policy.logits(state[0]), u[n, t - 1, p])
                seq = torch.cat([seq, tok[:, None]], dim=1)
            rewards[:, t - 1] += score(seq).double() / num_rollouts
    rewards[:, T - 1] = score(seqs).double()
    for t in range(T - 1, 0, -1):  # a token between rolled-out prefixes: the next one's value
        if t % stride:
            rewards[:, t - 1] = rewards[:, t]
    return rewards.to(policy.W_out.dtype)
