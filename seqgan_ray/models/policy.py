"""The LSTM policy shared by the generator G_θ, the rollout policy G_β and the oracle.

The gates follow the reference code's "target LSTM" exactly (no forget-gate offset):
    i = σ(x·Wi + h·Ui + bi)   f = σ(x·Wf + h·Uf + bf)   o = σ(x·Wo + h·Uo + bo)
    c~ = tanh(x·Wc + h·Uc + bc)   c = f·c + i·c~   h = o·tanh(c)   logits = h·Wout + bout
with h0 = c0 = 0 and the start token's embedding as the first input. The four gates are
stored fused, W = [Wi | Wf | Wo | Wc] (E, 4H), so a step is two matmuls.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..kernels.linear import affine
from ..kernels.sampling import cache_rows, sample_categorical
from ..kernels.token_logprob import TokenLogProb

State = tuple[Tensor, Tensor]  # (h, c), each (R, H)
PAD = 0  # what follows the end token in a variable-length sequence


def token_mask(seqs: Tensor, eos: int) -> Tensor:
    """True for the tokens of each row of `seqs` (B, T) up to and including its first `eos`."""
    is_eos = (seqs == eos).int()
    return (is_eos.cumsum(1) - is_eos) == 0


def end_at_eos(seqs: Tensor, eos: int) -> Tensor:
    """`seqs` (B, T) with every token after a row's first `eos` replaced by PAD."""
    return seqs.masked_fill(~token_mask(seqs, eos), PAD)


class LSTMPolicy(nn.Module):
    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, seq_len: int,
                 start_token: int = 0, *, eos_token: int | None = None, init_std: float = 0.1,
                 chunk_rows: int = 0):
        super().__init__()
        self.vocab_size, self.emb_dim, self.hidden_dim = vocab_size, emb_dim, hidden_dim
        self.seq_len, self.start_token = seq_len, start_token
        self.eos_token = eos_token  # None: fixed-length sequences (the synthetic task)
        self.chunk_rows = chunk_rows or cache_rows(vocab_size)
        self.embedding = nn.Parameter(torch.empty(vocab_size, emb_dim))   # (V, E)
        self.W = nn.Parameter(torch.empty(emb_dim, 4 * hidden_dim))       # (E, 4H)
        self.U = nn.Parameter(torch.empty(hidden_dim, 4 * hidden_dim))    # (H, 4H)
        self.b = nn.Parameter(torch.empty(4 * hidden_dim))                # (4H,)
        self.W_out = nn.Parameter(torch.empty(hidden_dim, vocab_size))    # (H, V)
        self.b_out = nn.Parameter(torch.empty(vocab_size))                # (V,)
        self.reset_parameters(init_std)

    def reset_parameters(self, std: float, generator: torch.Generator | None = None) -> None:
        """Every parameter N(0, std): the reference code's init (0.1 for G, 1.0 for the oracle)."""
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0.0, std, generator=generator)

    # ------------------------------------------------------------------ one step

    def initial_state(self, rows: int, generator: torch.Generator | None = None) -> State:
        """h0 = c0 = 0 for `rows` rows. `generator` is for a policy with a latent code
        (models/latent.py), which draws the code from it; this one draws nothing."""
        z = self.W.new_zeros(rows, self.hidden_dim)
        return z, z.clone()

    def step(self, tokens: Tensor, state: State) -> State:
        """Consume `tokens` (R,) from `state`; return the new (h, c). Logits come from `logits`."""
        return self.step_embedded(self.embedding[tokens], state)

    def step_embedded(self, x: Tensor, state: State) -> State:
        """Consume embedded inputs `x` (R, E): a token's embedding, or a soft token's mix of them."""
        return self._cell(affine(x, self.W, self.b), state)

    def _cell(self, x_gates: Tensor, state: State) -> State:
        """The LSTM cell, given the input's share of the gates x·W + b (R, 4H)."""
        h, c = state
        i, f, o, g = (x_gates + affine(h, self.U)).chunk(4, dim=-1)  # each (R, H)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def logits(self, h: Tensor) -> Tensor:
        return affine(h, self.W_out, self.b_out)  # (R, V)

    def sample_next(self, state: State, u: Tensor, *, temperature: float = 1.0) -> Tensor:
        """Draw the next token (R,) from `state` (its h, (R, H)) with uniforms `u` (R, 2).

        Logits are made and sampled `chunk_rows` rows at a time, so each block is still in
        the cache when the sampler reads it (the whole (R, V) array never exists).
        """
        h, n, blocks = state[0], self.chunk_rows, []
        for i in range(0, h.shape[0], n):
            logits = self.logits(h[i:i + n])
            if temperature != 1.0:  # a whole extra pass over the logits; rollouts never pay it
                logits = logits.div_(temperature)
            blocks.append(sample_categorical(logits, u[i:i + n]))
        return torch.cat(blocks)

    # ------------------------------------------------------------------ whole sequences

    def finish(self, seqs: Tensor) -> Tensor:
        """Sequences as the policy emits them: PAD after the end token, if there is one."""
        return seqs if self.eos_token is None else end_at_eos(seqs, self.eos_token)

    def mask(self, seqs: Tensor) -> Tensor | None:
        """Which tokens of `seqs` count in losses and rewards (None: all of them)."""
        return None if self.eos_token is None else token_mask(seqs, self.eos_token)

    def inputs(self, seqs: Tensor) -> Tensor:
        """Teacher-forcing inputs: the start token, then the sequence shifted right. (B, T)"""
        start = seqs.new_full((seqs.shape[0], 1), self.start_token)
        return torch.cat([start, seqs[:, :-1]], dim=1)

    def hidden_states(self, seqs: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Run teacher-forced over `seqs` (B, T). Returns h and c after each step, (B, T, H);
        step t has consumed the start token and y_0..y_{t-1}, so h[:, t] gives y_t's logits.
        `generator`: where `initial_state` draws a latent code from, if the policy has one."""
        B, T = seqs.shape
        x = affine(self.embedding[self.inputs(seqs)].view(B * T, -1), self.W, self.b).view(B, T, -1)  # (B, T, 4H)
        state = self.initial_state(B, generator)
        hs, cs = [], []
        for x_t in x.unbind(1):  # unbind: one backward op, not T zero-filled selects
            state = self._cell(x_t, state)
            hs.append(state[0])
            cs.append(state[1])
        return torch.stack(hs, 1), torch.stack(cs, 1)

    def prefix_states(self, seqs: Tensor) -> State:
        """The state after every prefix of `seqs` (B, T), for Eq. 4's rollouts (`rollout.RolloutPolicy`):
        (h, c), each (B, T, H), [:, p] having read the start token and y_0..y_{p-1}."""
        return self.hidden_states(seqs)

    def log_probs(self, seqs: Tensor, *, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> Tensor:
        """log G(y_t | y_<t) for every position of `seqs` (B, T). Returns (B, T). At a
        `temperature` τ ≠ 1, the log-probabilities of the tempered policy softmax(logits / τ),
        the distribution `sample(..., temperature=τ)` draws from. `generator`: as `hidden_states`."""
        return self.tempered_log_probs(self.head_inputs(seqs, generator=generator), seqs, temperature)

    def head_inputs(self, seqs: Tensor, *, generator: torch.Generator | None = None) -> Any:
        """What the output layer reads at every position of `seqs` (B, T): the LSTM's h (B, T, H).
        `log_probs` at a temperature τ is `tempered_log_probs` of it, so `nll_at` computes it once
        a batch for every τ."""
        return self.hidden_states(seqs, generator=generator)[0]

    def tempered_log_probs(self, inputs: Any, seqs: Tensor, temperature: float = 1.0) -> Tensor:
        """log softmax(logits / τ) of each token of `seqs` (B, T), from `head_inputs(seqs)`."""
        return self._token_log_probs(inputs, seqs, temperature)

    def log_probs_scheduled(self, seqs: Tensor, prob: float, *,
                            generator: torch.Generator | None = None) -> Tensor:
        """Scheduled sampling (Bengio et al. 2015): log G(y_t | inputs) where each input after
        the start token is, with probability `prob`, the model's own sample from the step
        before instead of the true y_{t−1}. Gradients flow through the states, not the draws."""
        B, T = seqs.shape
        state = self.initial_state(B, generator)
        tok = seqs.new_full((B,), self.start_token)
        hs = []
        for t in range(T):
            state = self.step(tok, state)
            hs.append(state[0])
            if t + 1 < T:
                u = torch.rand(B, 3, generator=generator, device=seqs.device)
                with torch.no_grad():
                    own = self.sample_next((state[0].detach(),), u[:, :2])
                tok = torch.where(u[:, 2] < prob, own, seqs[:, t])
        return self._token_log_probs(torch.stack(hs, 1), seqs)

    def _token_log_probs(self, h: Tensor, seqs: Tensor, temperature: float = 1.0) -> Tensor:
        W, b = self.W_out, self.b_out
        if temperature != 1.0:  # logits / τ = h·(W/τ) + b/τ: H·V divisions, not B·T·V
            W, b = W / temperature, b / temperature
        logp = TokenLogProb.apply(h.reshape(-1, self.hidden_dim), W, b, seqs.reshape(-1))
        return logp.view(seqs.shape)

    @torch.no_grad()
    def nll(self, seqs: Tensor, *, batch: int = 1024, temperature: float = 1.0) -> float:
        """Mean per-token negative log-likelihood of `seqs` (S, T) in nats (tokens up to the
        end token when sequences have one, the end token included), under softmax(logits / τ)
        at `temperature` τ."""
        return self.nll_at(seqs, [temperature], batch=batch)[0]

    @torch.no_grad()
    def nll_at(self, seqs: Tensor, temperatures: Sequence[float], *, batch: int = 1024) -> list[float]:
        """`nll` at each of `temperatures`, reading each batch's states once for all of them: the
        frontier's NLL-test, whose cost for LeakGAN's G (D's features of every prefix) is in
        the states, not the output layer."""
        totals, count = [0.0] * len(temperatures), 0
        for i in range(0, seqs.shape[0], batch):
            block = seqs[i:i + batch]
            inputs, mask = self.head_inputs(block), self.mask(block)
            for k, tau in enumerate(temperatures):
                logp = self.tempered_log_probs(inputs, block, tau).double()
                totals[k] -= (logp if mask is None else logp[mask]).sum().item()
            count += block.numel() if mask is None else int(mask.sum())
        return [total / count for total in totals]

    @torch.no_grad()
    def sequence_nll(self, seqs: Tensor, *, batch: int = 1024, temperature: float = 1.0) -> Tensor:
        """Each row's mean per-token NLL (S,) in float64, over the tokens `mask` counts, under
        softmax(logits / τ) at `temperature` τ."""
        out = []
        for i in range(0, seqs.shape[0], batch):
            block = seqs[i:i + batch]
            nll, mask = -self.log_probs(block, temperature=temperature).double(), self.mask(block)
            out.append(nll.mean(1) if mask is None else (nll * mask).sum(1) / mask.sum(1))
        return torch.cat(out)

    @torch.no_grad()
    def sample(self, num: int, *, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        """Draw `num` sequences (num, T) at the given temperature."""
        state = self.initial_state(num, generator)
        device = self.W_out.device
        tok = torch.full((num,), self.start_token, dtype=torch.long, device=device)
        seq = []
        for _ in range(self.seq_len):
            state = self.step(tok, state)
            u = torch.rand(num, 2, generator=generator, device=device)
            tok = self.sample_next(state, u, temperature=temperature)
            seq.append(tok)
        return self.finish(torch.stack(seq, 1))  # (num, T)

    def sample_relaxed(self, num: int, inverse_temperature: float, *, feed: str = "hard",
                       generator: torch.Generator | None = None, initial: State | None = None,
                       noise: bool = True) -> tuple[Tensor, Tensor]:
        """Draw `num` sequences with the Gumbel-max trick, and their Gumbel-softmax relaxation,
        through which gradients reach θ: at each step, y = logits + g with g ~ Gumbel(0, 1)
        (u drawn from `generator`), the token argmax(y) and the soft token softmax(β·y),
        β = `inverse_temperature`. `feed` is what the next step reads:

        - "hard": the sampled token's embedding (RelGAN's generator). The tokens are exact
          samples of the policy (the one `sample` draws and NLL-oracle scores). Gradients reach θ
          through each step's logits and through the recurrent state, which is not detached
          (as in RelGAN's code); only the path through the sampled token's embedding is cut.
        - "soft": the soft token's mix of embeddings (GSGAN's), so gradients also run through
          every fed-back input. The states then follow soft inputs, so the tokens are samples of
          a different sampler than the hard-fed policy that `sample` draws and evaluation scores
          (their NLL-oracle differs: the relaxed GANs log both).
        - "straight_through": the sampled token's embedding in the forward pass, the soft
          token's gradient in the backward one, emb[tok] + (soft − soft.detach())·emb: the
          tokens are the policy's exact samples, and gradients run through the inputs too.

        `initial`: the state to start from (default `initial_state`); `noise` False leaves the
        Gumbel noise out, so the token is argmax(logits) and the soft token TextGAN's
        soft-argmax softmax(β·logits).

        Returns tokens (num, T), as `sample` emits them, and soft tokens (num, T, V); with an
        end token, the soft tokens after it are one-hots of PAD, as the tokens are.
        """
        if feed not in ("hard", "soft", "straight_through"):
            raise ValueError(f"feed must be 'hard', 'soft' or 'straight_through', got {feed!r}")
        device = self.W_out.device
        state = self.initial_state(num, generator) if initial is None else initial
        x = self.embedding[torch.full((num,), self.start_token, dtype=torch.long, device=device)]
        tokens, softs = [], []
        for _ in range(self.seq_len):
            state = self.step_embedded(x, state)
            logits = self.logits(state[0])                                   # (R, V)
            y = logits
            if noise:
                u = torch.rand(logits.shape, generator=generator, device=device)
                y = logits - torch.log(-torch.log(u + 1e-10) + 1e-10)        # + Gumbel(0, 1)
            tok = y.detach().argmax(-1)
            soft = torch.softmax(inverse_temperature * y, dim=-1)
            if feed == "soft":
                x = soft @ self.embedding                                    # (R, E)
            elif feed == "straight_through":  # the value of emb[tok], the gradient of soft @ emb
                x = self.embedding[tok] + (soft - soft.detach()) @ self.embedding
            else:
                x = self.embedding[tok]
            tokens.append(tok)
            softs.append(soft)
        seqs, soft = torch.stack(tokens, 1), torch.stack(softs, 1)
        if self.eos_token is not None:
            keep = token_mask(seqs, self.eos_token)
            soft = torch.where(keep[..., None], soft, F.one_hot(seqs.new_full(seqs.shape, PAD),
                                                                self.vocab_size).to(soft.dtype))
        return self.finish(seqs), soft
