"""The value net of `rollout.estimator: critic`: V(Y_1:t), a prediction of D's score of the
completed sequence from its prefix of length t, for every t = 0..T in one pass."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PrefixValue(nn.Module):
    """An embedding, an LSTM and a sigmoid head over [start, y_1, ..., y_T]: row t of the output
    reads the prefix Y_1:t (row 0: nothing yet) and predicts D(Y) in [0, 1]."""

    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, start_token: int):
        super().__init__()
        self.start_token = start_token
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.head = nn.Linear(hidden_dim, 1)

    def reset_parameters(self, std: float, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0.0, std, generator=generator)

    def forward(self, seqs: Tensor) -> Tensor:
        """V of every prefix of `seqs` (B, T): (B, T + 1), column t for Y_1:t."""
        start = torch.full_like(seqs[:, :1], self.start_token)
        h, _ = self.lstm(self.embedding(torch.cat([start, seqs], dim=1)))  # (B, T + 1, H)
        return torch.sigmoid(self.head(h)).squeeze(-1)


def critic_advantages(values: Tensor, scores: Tensor) -> Tensor:
    """Each token's advantage (B, T) from `values` (B, T + 1), V(Y_1:t) for t = 0..T, and D's
    `scores` (B,) of the completed sequences: A_t = Q_t − V(Y_1:t−1), where Q_t = V(Y_1:t) for
    t < T (the critic's estimate in place of Eq. 4's Monte Carlo mean) and Q_T = D(Y)."""
    q = torch.cat([values[:, 1:-1], scores[:, None]], dim=1)
    return q - values[:, :-1]


def value_loss(values: Tensor, scores: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error of V(Y_1:t), t = 0..T−1, against D(Y) (the completed sequence's score);
    with `mask` (B, T), only the prefixes that end inside the sequence."""
    err = (values[:, :-1] - scores[:, None]) ** 2
    return err.mean() if mask is None else (err * mask).sum() / mask.sum().clamp(min=1)
