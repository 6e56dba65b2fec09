"""MaskGAN's networks (Fedus, Goodfellow, Dai, ICLR 2018), as the reference's `seq2seq_vd`
models (tensorflow/models research/maskgan/models/seq2seq_vd.py and critic_vd.py) do it:

- `MaskGANGenerator`: an encoder LSTM reads the masked sequence (a missing token is a learned
  <missing> embedding); a decoder LSTM, started from the encoder's final state and attending
  over its states (Luong), writes every position: a present token is copied, a missing one is
  sampled, and what was written is the next step's input. One embedding serves the encoder,
  the decoder and (transposed) the output layer. It also holds the critic's value head (trained
  by the learner, on features of its copy of D).
- `MaskGANDiscriminator`: the same encoder over the masked sequence; its decoder reads the
  filled-in sequence and gives a real/fake logit for every token. `critic_features` runs its
  decoder LSTM alone over the prefix (zero state, no attention), which the value head reads:
  V(x_0..x_{t-1}) for every t.

Both use variational dropout (one mask per sequence, the same at every step) on each layer's
input and recurrent state and on the decoder's output, only when a random stream is given.
Positions: a sequence x (B, T); `present` (B, T) True where x_t is shown to the models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..kernels.sampling import sample_categorical
from .policy import PAD, end_at_eos, token_mask

State = list[tuple[Tensor, Tensor]]  # (h, c) of each layer


def make_mask(seqs: Tensor, present_rate: float, mode: str, *, eos: int | None = None,
              generator: torch.Generator | None = None) -> Tensor:
    """Which tokens of `seqs` (B, T) are present (True) and which are to be filled in. Only a
    sentence's words can be missing (never its <eos> or the padding after it). `random`: each
    word missing with chance 1 − present_rate; `contiguous`: one block of round((1 −
    present_rate)·n) of a sentence's n words, starting at a uniform position."""
    B, T = seqs.shape
    words = torch.full((B,), T, device=seqs.device) if eos is None else (token_mask(seqs, eos).sum(1) - 1).clamp(min=0)
    positions = torch.arange(T, device=seqs.device).expand(B, T)
    u = torch.rand(B, T, generator=generator, device=seqs.device)
    if mode == "random":
        missing = (u >= present_rate) & (positions < words[:, None])
    elif mode == "contiguous":
        length = torch.floor((1 - present_rate) * words.double() + 0.5).long()  # (B,) half up
        start = torch.floor(u[:, 0].double() * (words - length + 1)).long()  # uniform in 0..n − length
        missing = (positions >= start[:, None]) & (positions < (start + length)[:, None])
    else:
        raise ValueError(f"unknown mask mode {mode!r}")
    return ~missing


def masked_inputs(inputs: Tensor, present: Tensor, missing_id: int) -> Tensor:
    """The encoder's inputs (B, T): `inputs`[t] is x_{t−1} (inputs[0] the start token), hidden
    (`missing_id`) where x_{t−1} is missing; the start token is always shown."""
    shown = torch.cat([torch.ones_like(present[:, :1]), present[:, :-1]], dim=1)
    return inputs.masked_fill(~shown, missing_id)


def dropout_mask(rows: int, units: int, keep: float, generator: torch.Generator | None,
                 device: torch.device) -> Tensor | None:
    """A variational dropout mask (rows, units), scaled by 1/keep; None without a stream."""
    if generator is None or keep >= 1:
        return None
    return (torch.rand(rows, units, generator=generator, device=device) < keep).float() / keep


class VDLSTM(nn.Module):
    """`layers` LSTM cells, stepped one token at a time, with variational dropout."""

    def __init__(self, size: int, layers: int, keep: float):
        super().__init__()
        self.cells = nn.ModuleList(nn.LSTMCell(size, size) for _ in range(layers))
        self.size, self.keep = size, keep

    def zero_state(self, rows: int, device: torch.device) -> State:
        z = torch.zeros(rows, self.size, device=device)
        return [(z, z) for _ in self.cells]

    def masks(self, rows: int, generator: torch.Generator | None, device: torch.device) -> list:
        """Per layer, the (input, state) dropout masks of one sequence batch."""
        return [(dropout_mask(rows, self.size, self.keep, generator, device),
                 dropout_mask(rows, self.size, self.keep, generator, device)) for _ in self.cells]

    def step(self, x: Tensor, state: State, masks: list) -> tuple[Tensor, State]:
        new = []
        for cell, (h, c), (m_in, m_state) in zip(self.cells, state, masks):
            h, c = cell(x if m_in is None else x * m_in, (h if m_state is None else h * m_state, c))
            new.append((h, c))
            x = h
        return x, new


class LuongAttention(nn.Module):
    """Luong's attention, as the reference's (tf.contrib's prepare_attention, "luong"): score
    h·(W_k e_s), context Σ α_s e_s, output W_c [h; context] (no bias, no nonlinearity)."""

    def __init__(self, size: int):
        super().__init__()
        self.keys = nn.Linear(size, size, bias=False)
        self.combine = nn.Linear(2 * size, size, bias=False)

    def forward(self, h: Tensor, keys: Tensor, values: Tensor) -> Tensor:
        alpha = torch.softmax(torch.einsum("bh,bsh->bs", h, keys), dim=-1)  # (B, S)
        context = torch.einsum("bs,bsh->bh", alpha, values)
        return self.combine(torch.cat([h, context], dim=-1))


class _Seq2Seq(nn.Module):
    """What G and D share: an embedding with a <missing> row, the encoder over the masked
    sequence, the decoder LSTM and its attention."""

    def __init__(self, vocab_size: int, size: int, layers: int, keep: float, start_token: int,
                 eos_token: int | None):
        super().__init__()
        self.vocab_size, self.size, self.start_token, self.eos_token = vocab_size, size, start_token, eos_token
        self.embedding = nn.Parameter(torch.empty(vocab_size, size))
        self.missing_embedding = nn.Parameter(torch.empty(1, size))
        self.encoder = VDLSTM(size, layers, keep)
        self.decoder = VDLSTM(size, layers, keep)
        self.attention = LuongAttention(size)
        self.keep = keep

    def reset_parameters(self, std: float, generator: torch.Generator | None = None) -> None:
        """Every parameter N(0, std)."""
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0.0, std, generator=generator)

    def inputs(self, seqs: Tensor) -> Tensor:
        start = torch.full_like(seqs[:, :1], self.start_token)
        return torch.cat([start, seqs[:, :-1]], dim=1)  # (B, T)

    def encode(self, seqs: Tensor, present: Tensor, generator: torch.Generator | None
               ) -> tuple[Tensor, State]:
        """The encoder's states (B, T, H) over the masked inputs, and its final state."""
        x = F.embedding(masked_inputs(self.inputs(seqs), present, self.vocab_size),
                        torch.cat([self.embedding, self.missing_embedding]))  # (B, T, H)
        B, T = seqs.shape
        state, masks = self.encoder.zero_state(B, seqs.device), self.encoder.masks(B, generator, seqs.device)
        out_mask = dropout_mask(B, self.size, self.keep, generator, seqs.device)
        hs = []
        for t in range(T):
            h, state = self.encoder.step(x[:, t], state, masks)
            hs.append(h if out_mask is None else h * out_mask)
        return torch.stack(hs, 1), state

    def mask(self, seqs: Tensor) -> Tensor | None:
        """True for a sequence's tokens up to its <eos> (None: fixed-length sequences)."""
        return None if self.eos_token is None else token_mask(seqs, self.eos_token)


class MaskGANGenerator(_Seq2Seq):
    """G: fills in the missing tokens of a sequence given the present ones (the reference's
    seq2seq_vd generator, with shared embeddings), plus the critic's value head."""

    def __init__(self, vocab_size: int, size: int, seq_len: int, start_token: int = 0, *, layers: int = 1,
                 keep: float = 1.0, eos_token: int | None = None, present_rate: float = 0.5,
                 mask_mode: str = "random"):
        super().__init__(vocab_size, size, layers, keep, start_token, eos_token)
        self.seq_len, self.present_rate, self.mask_mode = seq_len, present_rate, mask_mode
        self.out_bias = nn.Parameter(torch.empty(vocab_size))
        self.critic = nn.Linear(size, 1)  # V(s_t) from D's decoder features (critic_vd.py)

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """G's parameters and the critic head's, each clipped on its own (the reference's two ops)."""
        critic = set(self.critic.parameters())
        return [[p for p in self.parameters() if p not in critic], list(self.critic.parameters())]

    def decode(self, seqs: Tensor, present: Tensor, *, sample: bool, generator: torch.Generator | None = None,
               dropout: torch.Generator | None = None, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
        """Run the decoder over `seqs` (B, T) with `present` (B, T). `sample`: missing tokens are
        drawn (from `generator`) and fed back; else teacher forcing on `seqs`. Returns the
        written sequence (B, T) and the log-probability (B, T) of each written token, under the
        softmax of logits / `temperature`."""
        enc, state = self.encode(seqs, present, dropout)
        keys = self.attention.keys(enc)
        B, T = seqs.shape
        masks = self.decoder.masks(B, dropout, seqs.device)
        out_mask = dropout_mask(B, self.size, self.keep, dropout, seqs.device)
        token = torch.full((B,), self.start_token, dtype=torch.long, device=seqs.device)
        written, logps = [], []
        for t in range(T):
            h, state = self.decoder.step(self.embedding[token], state, masks)
            h = self.attention(h, keys, enc)
            if out_mask is not None:
                h = h * out_mask
            logits = h @ self.embedding.t() + self.out_bias  # (B, V)
            logp = torch.log_softmax(logits if temperature == 1.0 else logits / temperature, dim=-1)
            if sample:  # exact, and far faster than torch.multinomial on a CPU (kernels/sampling.py)
                u = torch.rand(B, 2, generator=generator, device=seqs.device)
                token = torch.where(present[:, t], seqs[:, t], sample_categorical(logp.detach(), u))
            else:
                token = seqs[:, t]
            written.append(token)
            logps.append(logp.gather(-1, token.unsqueeze(-1)).squeeze(-1))
        return torch.stack(written, 1), torch.stack(logps, 1)

    def infill(self, seqs: Tensor, present: Tensor, *, generator: torch.Generator | None = None,
               dropout: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """`seqs` with its missing tokens sampled (B, T), and the log-probability (B, T) of each
        written token (meaningful where it was missing)."""
        return self.decode(seqs, present, sample=True, generator=generator, dropout=dropout)

    def masked_nll(self, seqs: Tensor, present: Tensor, *, dropout: torch.Generator | None = None) -> Tensor:
        """Mean NLL per missing token (teacher forced), the MaskMLE loss; 0 when none is missing."""
        _, logp = self.decode(seqs, present, sample=False, dropout=dropout)
        nll = -logp  # (B, T)
        missing = (~present).float()
        return (nll * missing).sum() / missing.sum().clamp(min=1.0)

    def mask_mle_loss(self, seqs: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """MaskMLE (the reference's cross_entropy strategy): a fresh mask from `generator`, then
        the NLL of the missing tokens under teacher forcing, with dropout."""
        present = make_mask(seqs, self.present_rate, self.mask_mode, eos=self.eos_token, generator=generator)
        return self.masked_nll(seqs, present, dropout=generator)

    def everything_missing(self, seqs: Tensor) -> Tensor:
        """`present` for unconditional generation: no token shown, but padding after <eos>."""
        keep = self.mask(seqs)
        return torch.zeros_like(seqs, dtype=torch.bool) if keep is None else ~keep

    @torch.no_grad()
    def sample(self, num: int, *, generator: torch.Generator | None = None, batch: int = 1024,
               temperature: float = 1.0) -> Tensor:
        """`num` unconditional sequences (num, T): every token missing; `batch` rows at a time."""
        out = []
        for rows in [batch] * (num // batch) + ([num % batch] if num % batch else []):
            blank = torch.full((rows, self.seq_len), PAD, dtype=torch.long, device=self.embedding.device)
            out.append(self.decode(blank, torch.zeros_like(blank, dtype=torch.bool), sample=True,
                                   generator=generator, temperature=temperature)[0])
        seqs = torch.cat(out)
        return seqs if self.eos_token is None else end_at_eos(seqs, self.eos_token)

    @torch.no_grad()
    def nll(self, seqs: Tensor, *, batch: int = 1024, temperature: float = 1.0) -> float:
        """Mean NLL per token of `seqs` (S, T) as unconditional sequences (everything missing)."""
        total, count = 0.0, 0
        for block in seqs.split(batch):
            _, logp = self.decode(block, torch.zeros_like(block, dtype=torch.bool), sample=False,
                                  temperature=temperature)
            nll = -logp.double()
            keep = self.mask(block)
            total += float(nll.sum() if keep is None else nll[keep].sum())
            count += nll.numel() if keep is None else int(keep.sum())
        return total / max(count, 1)


class MaskGANDiscriminator(_Seq2Seq):
    """D: for every token of a filled-in sequence, a logit of its being real, given the masked
    sequence (the reference's seq2seq_vd discriminator)."""

    def __init__(self, vocab_size: int, size: int, start_token: int = 0, *, layers: int = 1, keep: float = 1.0,
                 eos_token: int | None = None):
        super().__init__(vocab_size, size, layers, keep, start_token, eos_token)
        self.out = nn.Linear(size, 1)

    def forward(self, seqs: Tensor, present: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Logits (B, T) that each token of `seqs` is real, given `seqs` masked by `present`;
        dropout from `generator` (None: none)."""
        enc, state = self.encode(seqs, present, generator)
        keys = self.attention.keys(enc)
        B, T = seqs.shape
        masks = self.decoder.masks(B, generator, seqs.device)
        out_mask = dropout_mask(B, self.size, self.keep, generator, seqs.device)
        x = self.embedding[seqs]  # (B, T, H): the decoder reads token t at step t
        logits = []
        for t in range(T):
            h, state = self.decoder.step(x[:, t], state, masks)
            h = self.attention(h, keys, enc)
            if out_mask is not None:
                h = h * out_mask
            logits.append(self.out(h).squeeze(-1))
        return torch.stack(logits, 1)

    def critic_features(self, seqs: Tensor) -> Tensor:
        """D's decoder LSTM alone over the prefixes of `seqs` (B, T): zero state, a zero input at
        t = 0, then x_{t−1}; no attention, no dropout. Row t describes x_0..x_{t−1} (B, T, H)."""
        B, T = seqs.shape
        x = torch.cat([torch.zeros(B, 1, self.size, device=seqs.device), self.embedding[seqs[:, :-1]]], dim=1)
        state, masks = self.decoder.zero_state(B, seqs.device), self.decoder.masks(B, None, seqs.device)
        hs = []
        for t in range(T):
            h, state = self.decoder.step(x[:, t], state, masks)
            hs.append(h)
        return torch.stack(hs, 1)
