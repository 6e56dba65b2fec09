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

from typing import Callable, Protocol

import torch
from torch import Tensor

from .kernels.sampling import sample_categorical
from .models.policy import LSTMPolicy

ScoreFn = Callable[[Tensor], Tensor]  # (R, T) token ids -> (R,) P(real)
RolloutScoreFn = Callable[[Tensor, Tensor], Tensor]  # seqs (B, T), completions (T−1, N, B, T) -> (T−1, N, B)
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


@torch.no_grad()
def complete_prefixes(policy: RolloutPolicy, seqs: Tensor, num_rollouts: int, u: Tensor) -> Tensor:
    """Sample N completions of every proper prefix of `seqs` (B, T) with `policy`.

    Returns (T−1, N, B, T): [t−1, n, b] keeps y_0..y_{t−1} of sequence b and samples the rest.
    """
    B, T = seqs.shape
    N = num_rollouts
    prefixes = policy.prefix_states(seqs)  # each (B, T, ...): [:, t] draws y_t
    out = seqs.expand(T - 1, N, B, T).reshape((T - 1) * N * B, T).clone()  # rows (t, n, b)
    state = None
    prev = None  # tokens sampled at the last position, for the rows already started
    for p in range(1, T):
        # Rows of prefixes shorter than p step from their previous token; the prefix of
        # length p joins with its cached teacher-forced state, repeated N times.
        joining = tuple(s[:, p].repeat(N, *[1] * (s.dim() - 2)) for s in prefixes)  # each (N*B, ...)
        if state is None:
            state = joining
        else:
            state = tuple(torch.cat([a, b]) for a, b in zip(policy.step(prev, state), joining))
        rows = p * N * B
        up = u[:, :p, p].permute(1, 0, 2, 3).reshape(rows, 2)  # (p*N*B, 2) in (t, n, b) order
        prev = policy.sample_next(state, up)
        out[:rows, p] = prev
    return policy.finish(out).view(T - 1, N, B, T)


@torch.no_grad()
def mc_rewards(policy: RolloutPolicy, score: ScoreFn, seqs: Tensor, num_rollouts: int, *,
               u: Tensor | None = None, generator: torch.Generator | None = None,
               score_rollouts: RolloutScoreFn | None = None) -> Tensor:
    """Eq. 4 for every token of `seqs` (B, T). Returns rewards (B, T).

    `score_rollouts(seqs, completions)`, when given, scores the completions (T−1, N, B, T)
    knowing their structure (D's shares the work of the windows inside each prefix);
    otherwise `score` scores them as plain rows."""
    B, T = seqs.shape
    N = num_rollouts
    if u is None:
        u = rollout_uniforms(B, T, N, generator=generator, device=seqs.device)
    completions = complete_prefixes(policy, seqs, N, u)
    if score_rollouts is not None:
        q, last = score_rollouts(seqs, completions).mean(dim=1), score(seqs)  # (T−1, B), (B,)
    else:
        scores = score(torch.cat([completions.reshape(-1, T), seqs]))  # ((T−1)·N·B + B,)
        q, last = scores[:-B].view(T - 1, N, B).mean(dim=1), scores[-B:]
    return torch.cat([q.t(), last[:, None]], dim=1)  # (B, T)


@torch.no_grad()
def mc_rewards_reference(policy: LSTMPolicy, score: ScoreFn, seqs: Tensor, num_rollouts: int, *,
                         u: Tensor) -> Tensor:
    """Eq. 4 written the plain way: for each n and t, re-run the prefix, sample the rest."""
    B, T = seqs.shape
    rewards = torch.zeros(B, T, dtype=torch.float64)
    for n in range(num_rollouts):
        for t in range(1, T):
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
    return rewards.to(policy.W.dtype)
