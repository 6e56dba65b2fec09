"""What a completed sequence is worth: the score that Eq. 4 averages over the rollouts.

SeqGAN scores with the discriminator, D_φ(Y) = P(real) (`rollout.reward: discriminator`,
held by the rollout worker itself, since its weights change every iteration). The paper's
PG-BLEU baseline scores with BLEU against the training data (`rollout.reward: bleu`). Any
other score plugs in by naming a class:

    rollout:
      reward: mypackage.rewards:MyReward

Each rollout worker builds it once, as `MyReward(cfg, real)` (the run's Config and the
training sequences (S, T) as a LongTensor), and calls it on completed sequences:
`reward(seqs)` with seqs (R, T) returns (R,) float scores, higher is better. With an end
token, what follows it is PAD. `BleuReward` below is a complete example.
"""

from __future__ import annotations

import importlib
from typing import Callable

import torch
from torch import Tensor

from .bleu import ReferenceIndex
from .config import Config, ConfigError

Reward = Callable[[Tensor], Tensor]  # (R, T) token ids -> (R,) scores


class BleuReward:
    """BLEU-n (rollout.bleu_n) of each sequence against all the training sequences, as
    Texygen defines it (clipped n-gram precisions, epsilon smoothing, brevity penalty):
    the paper's PG-BLEU. Sequences are cut at the end token, when the data has one."""

    def __init__(self, cfg: Config, real: Tensor):
        self.n, self.eos = cfg.rollout.bleu_n, cfg.data.eos_token
        self.index = ReferenceIndex((self._words(row) for row in real.tolist()), max_n=self.n)

    def _words(self, row: list[int]) -> tuple[int, ...]:
        if self.eos >= 0 and self.eos in row:
            row = row[:row.index(self.eos)]
        return tuple(row)

    def __call__(self, seqs: Tensor) -> Tensor:
        scores = [self.index.sentence_bleu(self._words(row))[self.n] for row in seqs.tolist()]
        return torch.tensor(scores, dtype=torch.float32, device=seqs.device)


def load_reward(name: str) -> type:
    """The reward class `rollout.reward` names (not `discriminator`, which the worker holds)."""
    if name == "bleu":
        return BleuReward
    module, _, attr = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise ConfigError(f"rollout.reward={name}: cannot import {module} ({exc}); is it on "
                          f"PYTHONPATH (and on every node of a cluster)?") from None
    except AttributeError:
        raise ConfigError(f"rollout.reward={name}: module {module} has no {attr}") from None
    if not callable(cls):
        raise ConfigError(f"rollout.reward={name}: {attr} is not a class or function")
    return cls


def make_reward(cfg: Config, real: Tensor) -> Reward | None:
    """The configured reward built on `real`; None means the discriminator."""
    name = cfg.rollout.reward
    return None if name == "discriminator" else load_reward(name)(cfg, real)
