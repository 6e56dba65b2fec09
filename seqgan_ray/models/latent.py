"""TextGAN's generator: SeqGAN's LSTM conditioned on a latent code z (generator.kind latent_lstm).

Each sequence has its own code z ~ U(−1, 1)^Z and starts from h0 = tanh(z·C0 + b0), c0 = 0, as
the decoder of the TextGAN authors' code does (dreasysnail/textGAN_public,
theano/model/lstm_layer.py, `decoder_g`: h0 = tanh(z·C0 + b0)). Their decoder also adds z·C
to every step's gates; here z enters through h0 only, so the state (h, c) carries everything
and every method of the LSTM (teacher forcing, sampling, prefix states) runs unchanged.

Where a method is given a random stream (`generator`), z is drawn from it: sampling, MLE,
the adversarial steps. Without one (`nll`, `sequence_nll`: NLL-test and the frontier), z is a
fixed draw from a stream seeded with 0, so a likelihood is a deterministic function of the
weights: −log p(x | z) for that z, whose mean over z bounds −log p(x) from above (Jensen).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .policy import LSTMPolicy, State

FIXED_CODE_SEED = 0  # the stream of the codes a likelihood uses when it is given none


class LatentLSTMPolicy(LSTMPolicy):
    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, seq_len: int, start_token: int = 0, *,
                 latent_dim: int, eos_token: int | None = None, init_std: float = 0.1, chunk_rows: int = 0):
        self.latent_dim = latent_dim
        super().__init__(vocab_size, emb_dim, hidden_dim, seq_len, start_token, eos_token=eos_token,
                         init_std=init_std, chunk_rows=chunk_rows)
        self.C0 = nn.Parameter(torch.empty(latent_dim, hidden_dim))  # (Z, H)
        self.b0 = nn.Parameter(torch.empty(hidden_dim))              # (H,)
        self.reset_parameters(init_std)

    def draw_latent(self, rows: int, generator: torch.Generator | None = None) -> Tensor:
        """Codes z ~ U(−1, 1)^Z for `rows` sequences, (rows, Z), from `generator` (None: the fixed
        stream seeded with FIXED_CODE_SEED)."""
        device = self.W.device
        if generator is None:
            generator = torch.Generator(device).manual_seed(FIXED_CODE_SEED)
        return torch.rand(rows, self.latent_dim, generator=generator, device=device) * 2 - 1

    def latent_state(self, z: Tensor) -> State:
        """The state before the first step for codes `z` (R, Z): h0 = tanh(z·C0 + b0), c0 = 0."""
        h = torch.tanh(torch.addmm(self.b0, z, self.C0))  # (R, H)
        return h, torch.zeros_like(h)

    def initial_state(self, rows: int, generator: torch.Generator | None = None) -> State:
        """The state of `rows` sequences, each from its own code drawn from `generator`."""
        return self.latent_state(self.draw_latent(rows, generator))
