"""RelGAN's generator (Nie et al., ICLR 2019): a relational memory core (Santoro et al. 2018)
in place of the LSTM, as the authors' code builds it (weilinie/RelGAN, models/rmc_vanilla.py
and utils/models/relational_memory.py, which port Sonnet's RelationalMemory to TF 1.4).

One step, with memory M (R, N, S) of N slots of S = head_size · num_heads units:

    x   = e(y)·W_in + b_in                         the token's embedding, projected to S
    A   = [M; x]                                   (R, N + 1, S)
    A   = LN(A + MultiHeadAttention(A))            queries, keys, values from A itself
    A   = LN(A + MLP(A))                           two layers of S, ReLU between
    i, f = σ(x·W_gi + tanh(M)·W_gm + (0, 1))       per unit ("unit" gates; forget bias 1)
    M'  = i · tanh(A[:, :N]) + f · M               logits = flatten(M')·W_out + b_out

As in the reference: the layer norms normalise over the slots and units together (TF's
`layer_norm` from axis 1) with per-unit gain and bias; queries are scaled by (2·key + head)^−½,
the size of one head's q, k and v together; weights start truncated-normal with std
1/√fan-in, biases 0, the memory as the identity padded with zeros. The policy's whole-sequence
API (sample, log_probs, nll, Gumbel-softmax sampling, Eq. 4's rollouts) is LSTMPolicy's: the
state is the memory, flattened, which is also the step's output.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..kernels.sampling import cache_rows
from .policy import LSTMPolicy, State


def _truncated(p: Tensor, fan_in: int, generator: torch.Generator | None) -> None:
    """TF's truncated_normal_initializer(stddev=1/√fan_in): N(0, s²) cut at ±2s."""
    s = 1.0 / math.sqrt(fan_in)
    nn.init.trunc_normal_(p, std=s, a=-2 * s, b=2 * s, generator=generator)


def _joint_layer_norm(x: Tensor, gain: Tensor, bias: Tensor) -> Tensor:
    """tf.contrib.layers.layer_norm on (R, N, S): statistics over N and S together, ε 1e-12."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    var = x.var(dim=(-2, -1), keepdim=True, unbiased=False)
    return (x - mean) * torch.rsqrt(var + 1e-12) * gain + bias


class RelationalMemoryPolicy(LSTMPolicy):
    def __init__(self, vocab_size: int, emb_dim: int, seq_len: int, start_token: int = 0, *,
                 mem_slots: int = 1, head_size: int = 256, num_heads: int = 2,
                 eos_token: int | None = None, chunk_rows: int = 0):
        nn.Module.__init__(self)  # LSTMPolicy's methods, none of its LSTM parameters
        self.vocab_size, self.emb_dim, self.seq_len, self.start_token = vocab_size, emb_dim, seq_len, start_token
        self.eos_token = eos_token
        self.mem_slots, self.head_size, self.num_heads = mem_slots, head_size, num_heads
        S = self.mem_size = head_size * num_heads
        self.hidden_dim = mem_slots * S  # the output the logits read
        qkv = num_heads * 3 * head_size  # key size = head size, as in the reference
        self.chunk_rows = chunk_rows or cache_rows(vocab_size)
        self.embedding = nn.Parameter(torch.empty(vocab_size, emb_dim))
        self.W_in, self.b_in = nn.Parameter(torch.empty(emb_dim, S)), nn.Parameter(torch.empty(S))
        self.W_qkv = nn.Parameter(torch.empty(S, qkv))
        self.ln_qkv = nn.Parameter(torch.empty(2, qkv))        # [gain; bias]
        self.ln_attn = nn.Parameter(torch.empty(2, S))
        self.W_mlp = nn.Parameter(torch.empty(2, S, S))
        self.b_mlp = nn.Parameter(torch.empty(2, S))
        self.ln_mlp = nn.Parameter(torch.empty(2, S))
        self.W_gate_in = nn.Parameter(torch.empty(S, 2 * S))    # [input | forget]
        self.W_gate_mem = nn.Parameter(torch.empty(S, 2 * S))
        self.W_out = nn.Parameter(torch.empty(self.hidden_dim, vocab_size))
        self.b_out = nn.Parameter(torch.empty(vocab_size))
        self.reset_parameters()

    def reset_parameters(self, std: float | None = None, generator: torch.Generator | None = None) -> None:
        """The reference's init (`std` is ignored: each weight's scale is 1/√fan-in)."""
        with torch.no_grad():
            S = self.mem_size
            _truncated(self.embedding, self.vocab_size, generator)  # as the reference's g_emb
            _truncated(self.W_in, self.emb_dim, generator)
            _truncated(self.W_qkv, S, generator)
            for w in self.W_mlp:
                _truncated(w, S, generator)
            _truncated(self.W_gate_in, S, generator)
            _truncated(self.W_gate_mem, S, generator)
            _truncated(self.W_out, self.hidden_dim, generator)
            for p in (self.b_in, self.b_mlp, self.b_out):
                p.zero_()
            for ln in (self.ln_qkv, self.ln_attn, self.ln_mlp):
                ln[0].fill_(1.0)
                ln[1].zero_()

    def initial_state(self, rows: int, generator: torch.Generator | None = None) -> State:
        """The identity memory (slot i has a 1 in unit i), zero-padded to S units, flattened."""
        N, S = self.mem_slots, self.mem_size
        mem = self.W_out.new_zeros(rows, N, S)
        k = min(N, S)
        mem[:, torch.arange(k), torch.arange(k)] = 1.0
        return (mem.view(rows, N * S),)

    def step_embedded(self, x: Tensor, state: State) -> State:
        R, N, S, H = x.shape[0], self.mem_slots, self.mem_size, self.num_heads
        mem = state[0].view(R, N, S)
        inp = torch.addmm(self.b_in, x, self.W_in)                           # (R, S)
        a = torch.cat([mem, inp[:, None]], dim=1)                             # (R, N + 1, S)
        qkv = _joint_layer_norm(a @ self.W_qkv, *self.ln_qkv)                 # (R, N + 1, 3·S)
        qkv = qkv.view(R, N + 1, H, 3 * self.head_size).transpose(1, 2)       # (R, H, N + 1, 3·h)
        q, k, v = qkv.split(self.head_size, dim=-1)
        q = q * (3 * self.head_size) ** -0.5
        attended = (torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v).transpose(1, 2).reshape(R, N + 1, S)
        a = _joint_layer_norm(a + attended, *self.ln_attn)
        mlp = torch.relu(a @ self.W_mlp[0] + self.b_mlp[0]) @ self.W_mlp[1] + self.b_mlp[1]
        a = _joint_layer_norm(a + mlp, *self.ln_mlp)[:, :N]                   # (R, N, S)
        gates = (torch.tanh(mem) @ self.W_gate_mem + (inp @ self.W_gate_in)[:, None])
        i, f = gates.chunk(2, dim=-1)
        mem = torch.sigmoid(i) * torch.tanh(a) + torch.sigmoid(f + 1.0) * mem
        return (mem.reshape(R, N * S),)

    def hidden_states(self, seqs: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Teacher-forced over `seqs` (B, T): the output after each step, (B, T, N·S), twice
        (LSTMPolicy returns h and c; here the state is the output)."""
        B, T = seqs.shape
        x = self.embedding[self.inputs(seqs)]  # (B, T, E)
        state, outs = self.initial_state(B, generator), []
        for x_t in x.unbind(1):
            state = self.step_embedded(x_t, state)
            outs.append(state[0])
        h = torch.stack(outs, 1)
        return h, h

    def prefix_states(self, seqs: Tensor) -> State:
        return (self.hidden_states(seqs)[0],)
