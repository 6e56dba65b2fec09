"""What a completed sequence is worth: the score that Eq. 4 averages over the rollouts.

SeqGAN scores with the discriminator, D_φ(Y) = P(real) (`rollout.reward: discriminator`).
The paper's PG-BLEU baseline scores with BLEU against the training data (`rollout.reward:
bleu`). Any other score plugs in by naming a class:

    rollout:
      reward: mypackage.rewards:MyReward

Each rollout worker builds it once, as `MyReward(cfg, real)` (the run's Config and the
training sequences (S, T) as a LongTensor), and calls it on completed sequences:
`reward(seqs)` with seqs (R, T) returns (R,) float scores, higher is better. With an end
token, what follows it is PAD. `BleuReward` below is a complete example.

Two class attributes say what a reward needs, and so what the trainer does for it:
- `uses_discriminator` (default False): it is built as `MyReward(cfg, real, discriminator)`
  with the rollout worker's copy of D_φ (its weights updated in place every iteration), and
  the adversarial phase trains D and sends it to the workers. Otherwise D is left alone.
- `needs_data` (default True): whether it needs `real`; one that does not (the discriminator's)
  is built with `real=None` as soon as the worker exists.
An optional method `score_rollouts(seqs, completions, lengths)` scores the (L, N, B, T)
completions of the prefixes of `seqs` (B, T) that are `lengths` long, knowing their structure
(D's shares the windows inside each prefix).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .config import Config, ConfigError, import_named
from .tasks.bleu import ReferenceIndex

Reward = Callable[[Tensor], Tensor]  # (R, T) token ids -> (R,) scores


class DiscriminatorReward:
    """SeqGAN's reward: D_φ(Y) = P(real), from the rollout worker's copy of D."""

    uses_discriminator = True
    needs_data = False

    def __init__(self, cfg: Config, real: Tensor | None, discriminator: torch.nn.Module):
        self.discriminator = discriminator

    def __call__(self, seqs: Tensor) -> Tensor:
        return self.discriminator.prob_real(seqs)

    def score_rollouts(self, seqs: Tensor, completions: Tensor, lengths: list[int]) -> Tensor:
        return self.discriminator.prob_real_rollouts(seqs, completions, lengths)


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


class ConstantReward:
    """Every sequence scores 1: REINFORCE on G's own samples with no signal at all, the control
    for SeqGAN's reward (D's probabilities are positive too, and Eq. 8 has no baseline). Its
    expected gradient is 0; what it does to G is what sampling noise under Adam does. A run
    with it that lands where SeqGAN does on the frontier says D's signal bought nothing. Eq. 4's
    average of it is 1 for every prefix, so a rollout worker returns that without rolling out
    (`constant`): the same rewards, none of the rollouts' time."""

    needs_data = False
    constant = 1.0  # every sequence's score, so every Eq. 4 reward

    def __init__(self, cfg: Config, real: Tensor | None):
        pass

    def __call__(self, seqs: Tensor) -> Tensor:
        return torch.ones(len(seqs), device=seqs.device)


REWARDS: dict[str, type] = {"discriminator": DiscriminatorReward, "bleu": BleuReward,
                            "constant": ConstantReward}  # rollout.reward


def load_reward(name: str) -> type:
    """The reward class `rollout.reward` names: a registered one, or module:Class."""
    if name in REWARDS:
        return REWARDS[name]
    cls = import_named("rollout.reward", name, what=f"one of {', '.join(REWARDS)} (docs/rewards.md)")
    if not callable(cls):
        raise ConfigError(f"rollout.reward={name}: not a class or function")
    return cls


def uses_discriminator(name: str) -> bool:
    """Whether the reward `name` scores with D_φ, which the adversarial phase then trains."""
    return bool(getattr(load_reward(name), "uses_discriminator", False))


def needs_data(name: str) -> bool:
    """Whether the reward `name` is built on the training sequences."""
    return bool(getattr(load_reward(name), "needs_data", True))


def make_reward(cfg: Config, real: Tensor | None, discriminator: torch.nn.Module) -> Reward:
    """The configured reward, built on `real` (and on `discriminator`, if it uses D)."""
    cls = load_reward(cfg.rollout.reward)
    return cls(cfg, real, discriminator) if uses_discriminator(cfg.rollout.reward) else cls(cfg, real)
