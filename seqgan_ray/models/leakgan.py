"""LeakGAN's generator (Guo et al., AAAI 2018): a Manager and a Worker, steered by what D leaks.

At every token the discriminator's feature vector f_t of the sentence so far (its pooled
convolution features after the highway layer, `Discriminator.leaked_features`; positions not
yet written are -1) is "leaked" to the generator:

    Manager:  an LSTM over f_0, f_1, ...; its output, l2-normalised, is the sub-goal s_t
    goal:     g = the sum of the sub-goals of the previous c = step_size tokens (a learned
              g_init for the first c), w = l2norm(g · W_g) (goal_size K)
    Worker:   an LSTM over the tokens (SeqGAN's cell); O_t = (h_t · W_out + b_out) as (V, K)
    logits:   O_t · w

Drawing y_p, the Worker has read the start token and y_0..y_{p-1}, the Manager f_0..f_p (f_p of
y_0..y_{p-1}), and y_p's goal is that of its block k = p // c. So the one policy that samples
(`sample`, Eq. 4's rollouts through `prefix_states`/`step`) is the one whose log-probabilities
train (`leak_terms`). The reference code builds three TF graphs for these, and its pretraining
and rollout graphs run the Manager one feature ahead of its sampling graph; we use the
sampling graph's alignment everywhere (docs/leakgan.md). Its g_init is a variable per batch
row; ours is one vector.

The discriminator's copy lives inside the policy (`leak`, frozen): shipping G's weights to a
rollout worker, or into a checkpoint, ships the D snapshot it samples through.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..kernels.sampling import sample_categorical
from .discriminator import Discriminator
from .policy import LSTMPolicy

# (worker h, worker c, manager h, manager c, this block's sub-goals so far, this block's goal,
#  D's window values of the sentence so far (Discriminator.write_windows), how many tokens it has (R,))
LeakState = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]


class LeakTerms(NamedTuple):
    """What LeakGAN's losses take for a batch of sequences (B, T), teacher-forced."""
    log_probs: Tensor      # (B, T) log G(y_p | y_<p); gradients reach the Worker only
    manager_cos: Tensor    # (B, T/c) cos(f_{c(k+1)} - f_{ck}, g_k); gradients reach the Manager only
    worker_reward: Tensor  # (B, T) intrinsic: cos(f_{p+1} - f_{c(p//c)}, g_{p//c}), no gradient


class LeakGANPolicy(LSTMPolicy):
    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, seq_len: int, start_token: int = 0, *,
                 discriminator: Discriminator, goal_size: int = 16, step_size: int = 4,
                 temperature_trick: float = 1.0, eos_token: int | None = None, init_std: float = 0.1,
                 chunk_rows: int = 0):
        super().__init__(vocab_size, emb_dim, hidden_dim, seq_len, start_token, eos_token=eos_token,
                         init_std=init_std, chunk_rows=chunk_rows)
        F_ = discriminator.feature_dim
        self.goal_size, self.step_size, self.trick = goal_size, step_size, temperature_trick
        # Worker output, stored [h·K + k, v] so the logits are (h ⊗ w) · W_out: no (R, V, K) array.
        self.W_out = nn.Parameter(torch.empty(hidden_dim * goal_size, vocab_size))
        self.b_out = nn.Parameter(torch.empty(goal_size, vocab_size))
        self.W_goal = nn.Parameter(torch.empty(F_, goal_size))         # goal -> w (a Worker weight)
        self.M_W = nn.Parameter(torch.empty(F_, 4 * hidden_dim))         # Manager LSTM [i|f|o|c]
        self.M_U = nn.Parameter(torch.empty(hidden_dim, 4 * hidden_dim))
        self.M_b = nn.Parameter(torch.empty(4 * hidden_dim))
        self.M_out = nn.Parameter(torch.empty(hidden_dim, F_))
        self.M_bout = nn.Parameter(torch.empty(F_))
        self.goal_init = nn.Parameter(torch.empty(F_))
        self.leak = discriminator.requires_grad_(False).eval()
        self.reset_parameters(init_std)

    MANAGER = ("M_W", "M_U", "M_b", "M_out", "M_bout", "goal_init")

    def reset_parameters(self, std: float, generator: torch.Generator | None = None) -> None:
        """The Worker's and Manager's parameters N(0, std) (the reference's init); D's copy untouched."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if not name.startswith("leak."):
                    p.normal_(0.0, std, generator=generator)

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """The Worker's and the Manager's parameters: the reference clips each group's gradient
        norm on its own."""
        manager = [getattr(self, n) for n in self.MANAGER]
        worker = [p for n, p in self.named_parameters() if n not in self.MANAGER and not n.startswith("leak.")]
        return [worker, manager]

    # ------------------------------------------------------------------ pieces

    def manager(self, feat: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """One Manager step on features (R, F): its new (h, c) and the sub-goal (R, F), unit length."""
        h, c = state
        i, f, o, g = (feat @ self.M_W + h @ self.M_U + self.M_b).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c, F.normalize(h @ self.M_out + self.M_bout, dim=-1)

    def goal_logits(self, h: Tensor, goal: Tensor) -> Tensor:
        """The Worker's logits (R, V) from its h (R, H) and the goal (R, F)."""
        w = F.normalize(goal @ self.W_goal, dim=-1)                  # (R, K)
        return (h[:, :, None] * w[:, None, :]).flatten(1) @ self.W_out + w @ self.b_out

    # ------------------------------------------------------------------ teacher-forced

    def _teacher_forced(self, seqs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, tuple[Tensor, Tensor]]:
        """Over `seqs` (B, T): the Worker's h, c (B, T, H); the features f_0..f_T (B, T+1, F); the
        sub-goals s_0..s_{T-1} (B, T, F); the Manager's h, c after each (B, T, H) each."""
        B, T = seqs.shape
        h, c = self.hidden_states(seqs)
        feats = self.leak.prefix_leaked_features(seqs)                      # f_0..f_T, (B, T + 1, F)
        state = (feats.new_zeros(B, self.hidden_dim), feats.new_zeros(B, self.hidden_dim))
        subs, mh, mc = [], [], []
        for t in range(T):
            *state, sub = self.manager(feats[:, t], state)
            subs.append(sub)
            mh.append(state[0])
            mc.append(state[1])
        return h, c, feats, torch.stack(subs, 1), (torch.stack(mh, 1), torch.stack(mc, 1))

    def _blocks(self, x: Tensor) -> Tensor:
        """`x` (B, T, ...) cut into blocks of c (B, T/c, c, ...), a short last one padded with zeros."""
        B, T = x.shape[:2]
        c = self.step_size
        K = -(-T // c)
        if K * c > T:
            x = torch.cat([x, x.new_zeros(B, K * c - T, *x.shape[2:])], dim=1)
        return x.view(B, K, c, *x.shape[2:])

    def _block_goals(self, subs: Tensor) -> Tensor:
        """The goal of each block (B, T/c, F): g_init, then each block's sum of the previous one's sub-goals."""
        sums = self._blocks(subs).sum(2)
        return torch.cat([self.goal_init.expand(len(subs), 1, -1), sums[:, :-1]], dim=1)

    def _per_token(self, blocks: Tensor, T: int) -> Tensor:
        """Each block's value (B, T/c, ...) repeated for its tokens: (B, T, ...)."""
        return blocks.repeat_interleave(self.step_size, dim=1)[:, :T]

    def leak_terms(self, seqs: Tensor) -> LeakTerms:
        """The log-probabilities and cosines of LeakGAN's losses for `seqs` (B, T)."""
        B, T = seqs.shape
        c = self.step_size
        h, _, feats, subs, _ = self._teacher_forced(seqs)
        goals = self._block_goals(subs)                                     # (B, T/c, F)
        per_token = self._per_token(goals, T)                               # (B, T, F)
        logits = self.goal_logits(h.flatten(0, 1), per_token.detach().flatten(0, 1)).view(B, T, -1)
        logp = torch.log_softmax(logits, -1).gather(-1, seqs[..., None]).squeeze(-1)
        starts = feats[:, 0:T:c]                                            # f_{ck} (B, T/c, F)
        ends = feats[:, [min(start + c, T) for start in range(0, T, c)]]    # f_{c(k+1)}, or f_T
        manager_cos = F.cosine_similarity(ends - starts, goals, dim=-1)
        moved = feats[:, 1:] - self._per_token(starts, T)                   # f_{p+1} - f_{c(p//c)}
        worker_reward = F.cosine_similarity(moved, per_token.detach(), dim=-1)
        return LeakTerms(logp, manager_cos, worker_reward)

    def head_inputs(self, seqs: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The Worker's logits (B, T, V) at every position of `seqs`, from its h and the goal: the
        cost is here (the Manager reads D's features of every prefix, and the goal-weighted output
        is a (H·K, V) product), not in the tempered softmax."""
        h, _, _, subs, _ = self._teacher_forced(seqs)
        B, T = seqs.shape
        goals = self._per_token(self._block_goals(subs), T)
        return self.goal_logits(h.flatten(0, 1), goals.flatten(0, 1)).view(B, T, -1)

    def tempered_log_probs(self, inputs: Tensor, seqs: Tensor, temperature: float = 1.0) -> Tensor:
        return torch.log_softmax(inputs / temperature, -1).gather(-1, seqs[..., None]).squeeze(-1)

    def log_probs_scheduled(self, seqs: Tensor, prob: float, *, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError("scheduled sampling is not defined for LeakGAN's generator")

    # ------------------------------------------------------------------ step by step (rollouts, sampling)

    def begin(self, rows: int) -> LeakState:
        """The state that draws y_0: the Worker has read the start token, the Manager f_0."""
        device = self.W.device
        zeros = torch.zeros(rows, self.hidden_dim, device=device)
        start = self.embedding[torch.full((rows,), self.start_token, dtype=torch.long, device=device)]
        h, c = self.step_embedded(start, (zeros, zeros))
        windows = self.leak.empty_windows(rows)
        mh, mc, sub = self.manager(self.leak.features_from_windows(windows), (zeros, zeros))
        goal = self.goal_init.expand(rows, -1)
        return h, c, mh, mc, sub, goal, windows, torch.zeros(rows, dtype=torch.long, device=device)

    def step(self, tokens: Tensor, state: LeakState) -> LeakState:
        """Read `tokens` (R,): the Worker steps, the sentence grows, the goal turns over at a block's
        end, and the Manager reads the new sentence's features. Consumes `state` (its D windows
        are updated in place)."""
        h, c, mh, mc, acc, goal, windows, pos = state
        windows = self.leak.write_windows(windows, tokens, int(pos[0]))  # rows step together
        pos = pos + 1
        h, c = self.step_embedded(self.embedding[tokens], (h, c))
        turn = (pos % self.step_size == 0)[:, None]
        goal = torch.where(turn, acc, goal)
        acc = torch.where(turn, 0.0, acc)
        mh, mc, sub = self.manager(self.leak.features_from_windows(windows), (mh, mc))
        return h, c, mh, mc, acc + sub, goal, windows, pos

    def sample_next(self, state: LeakState, u: Tensor, *, temperature: float = 1.0) -> Tensor:
        logits = self.goal_logits(state[0], state[5])
        if temperature != 1.0:
            logits = logits / temperature
        return sample_categorical(logits, u)

    def prefix_states(self, seqs: Tensor) -> LeakState:
        """The state that draws y_p after reading y_0..y_{p-1}, for every p: each tensor (B, T, ...)."""
        B, T = seqs.shape
        h, cell, _, subs, (mh, mc) = self._teacher_forced(seqs)
        goals = self._per_token(self._block_goals(subs), T)                         # (B, T, F)
        within = self._blocks(subs).cumsum(2).flatten(1, 2)[:, :T]                  # this block's so far
        windows = self.leak.prefix_windows(seqs)                                    # (B, T, W)
        pos = torch.arange(T, device=seqs.device).expand(B, T)
        return h, cell, mh, mc, within, goals, windows, pos

    @torch.no_grad()
    def sample(self, num: int, *, generator: torch.Generator | None = None, temperature: float = 1.0,
               update: bool = False) -> Tensor:
        """Draw `num` sequences (num, T). With the temperature trick (temperature_trick 1.5, the
        reference's), the logits are multiplied by it for the first two tokens, and for all of
        them unless the samples are for a G `update` (negatives, evaluation)."""
        state = self.begin(num)
        seq = []
        for p in range(self.seq_len):
            if p:
                state = self.step(seq[-1], state)
            boost = self.trick if (p < 2 or not update) else 1.0
            u = torch.rand(num, 2, generator=generator, device=self.W.device)
            seq.append(self.sample_next(state, u, temperature=temperature / boost))
        return self.finish(torch.stack(seq, 1))
