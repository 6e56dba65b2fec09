"""Analytical FLOP counts of SeqGAN's work (a multiply-add is 2 FLOPs), for the benchmark.

Only the matmuls are counted: the LSTM gates and the output projection of the generator,
the window matmuls, highway and output layer of the discriminator. Sampling (one exp per
vocabulary entry), activations and the optimizer are left out, so a measured time can only
be longer than FLOPs / peak; that bound is the "FLOP floor".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..models.discriminator import paper_filters
from ..rollout import rollout_prefixes


def generator_row_step(emb_dim: int, hidden_dim: int, vocab_size: int) -> int:
    """One LSTM step and its output projection for one row: 2·(E·4H + H·4H + H·V)."""
    E, H, V = emb_dim, hidden_dim, vocab_size
    return 2 * (E * 4 * H + H * 4 * H + H * V)


def reward_row_steps(batch: int, seq_len: int, num_rollouts: int, stride: int = 1) -> int:
    """Generator row-steps of one batch of Eq. 4: Σ_p (T−p)·N·B over the rolled-out prefix
    lengths p (triangular batching: the prefix of length p needs T−p steps), (T−1)·T/2·N·B at
    stride 1 and about a c-th of it at stride c, plus B·T teacher-forced."""
    B, T, N = batch, seq_len, num_rollouts
    return sum(T - p for p in rollout_prefixes(T, stride)) * N * B + B * T


def discriminator_forward(seq_len: int, emb_dim: int, filter_sizes: list[int],
                          num_filters: list[int]) -> int:
    """One sequence through D: Σ_k 2·(T−k+1)·E·k·F_k (window matmuls), 2·F·2F (highway),
    2·F·2 (output layer), F = Σ_k F_k."""
    T, E = seq_len, emb_dim
    conv = sum(2 * (T - k + 1) * E * k * n for k, n in zip(filter_sizes, num_filters))
    F = sum(num_filters)
    return conv + 2 * F * 2 * F + 2 * F * 2


def discriminator_rollout_scoring(seq_len: int, emb_dim: int, filter_sizes: list[int],
                                  num_filters: list[int], batch: int, num_rollouts: int, stride: int = 1) -> int:
    """D on the (T−1)·N·B completions of Eq. 4 as `Discriminator.prob_real_rollouts` does it:
    the windows of each sequence once (their running max covers the windows inside every
    prefix), then per completion of the prefix of length t only the windows starting at
    max(0, t−k+1), and the highway and output layer of every completion."""
    T, E, B, N = seq_len, emb_dim, batch, num_rollouts
    full = discriminator_forward(T, E, filter_sizes, num_filters)
    head = full - sum(2 * (T - k + 1) * E * k * n for k, n in zip(filter_sizes, num_filters))
    conv = B * sum(2 * (T - k + 1) * E * k * n for k, n in zip(filter_sizes, num_filters))
    prefixes = rollout_prefixes(T, stride)
    for t in prefixes:
        conv += N * B * sum(2 * (T - max(0, t - k + 1) - k + 1) * E * k * n
                            for k, n in zip(filter_sizes, num_filters))
    return conv + len(prefixes) * N * B * head


@dataclass(frozen=True)
class Work:
    """FLOPs split by who does them: the generator (always float32) and the discriminator
    (in `discriminator.precision`)."""

    generator: float = 0.0
    discriminator: float = 0.0

    @property
    def total(self) -> float:
        return self.generator + self.discriminator

    def __add__(self, other: "Work") -> "Work":
        return Work(self.generator + other.generator, self.discriminator + other.discriminator)

    def __mul__(self, k: float) -> "Work":
        return Work(self.generator * k, self.discriminator * k)

    def floor_s(self, peak_fp32: float, peak_disc: float) -> float:
        """Seconds at the given peaks (FLOP/s): the generator at fp32, D at its precision's."""
        return self.generator / peak_fp32 + self.discriminator / peak_disc


class Counts:
    """FLOP counts of the pieces of training under one config."""

    def __init__(self, cfg: Config):
        d, g, dc = cfg.data, cfg.generator, cfg.discriminator
        self.cfg = cfg
        self.row_step = generator_row_step(g.emb_dim, g.hidden_dim, d.vocab_size)
        self.oracle_row_step = generator_row_step(d.oracle_emb_dim, d.oracle_hidden_dim, d.vocab_size)
        sizes, maps = (dc.filter_sizes, dc.num_filters) if dc.filter_sizes else paper_filters(d.seq_len)
        self.d_forward = discriminator_forward(d.seq_len, dc.emb_dim, sizes, maps)
        self.d_filters = (dc.emb_dim, sizes, maps)

    def sample(self, num: int) -> Work:
        """Draw `num` sequences from G."""
        return Work(generator=num * self.cfg.data.seq_len * self.row_step)

    def rewards(self, batch: int, *, shared_prefix: bool = True) -> Work:
        """One batch of Eq. 4: the completions, then D on every completion and the batch;
        with `shared_prefix` as the rollout workers score (windows inside a prefix once),
        else every completion whole."""
        T, N, c = self.cfg.data.seq_len, self.cfg.rollout.num_rollouts, self.cfg.rollout.stride
        scoring = (discriminator_rollout_scoring(T, *self.d_filters, batch, N, c) if shared_prefix
                   else len(rollout_prefixes(T, c)) * N * batch * self.d_forward)
        return Work(reward_row_steps(batch, T, N, c) * self.row_step, scoring + batch * self.d_forward)

    def generator_update(self, batch: int) -> Work:
        """MLE or policy-gradient step: forward and backward, 3x the forward."""
        return Work(generator=3 * batch * self.cfg.data.seq_len * self.row_step)

    def discriminator_training(self, sequences: int) -> Work:
        """D trained on `sequences` sequences once: forward and backward, 3x the forward."""
        return Work(discriminator=3 * sequences * self.d_forward)

    def evaluation(self) -> Work:
        """NLL-oracle: sample eval_samples sequences, score them with the oracle."""
        n = self.cfg.train.eval_samples
        return self.sample(n) + Work(generator=n * self.cfg.data.seq_len * self.oracle_row_step)

    def real_per_round(self) -> int:
        """Real sequences of a D round (train.num_real; -1: a corpus's num_negatives, the
        synthetic task's whole training set). A corpus's size is not in the config: as given."""
        tc, d = self.cfg.train, self.cfg.data
        return tc.num_real if tc.num_real > 0 else tc.num_negatives if d.corpus else d.num_train

    def d_round(self, epochs: int) -> Work:
        """Fresh negatives, then `epochs` epochs over real + negatives."""
        tc = self.cfg.train
        return self.sample(tc.num_negatives) + self.discriminator_training(epochs * (self.real_per_round()
                                                                                    + tc.num_negatives))

    def iteration(self) -> Work:
        """One adversarial iteration, evaluation excluded."""
        tc, B = self.cfg.train, self.cfg.generator.batch_size
        g = (self.sample(B) + self.rewards(B) + self.generator_update(B)) * tc.g_steps
        return g + self.d_round(tc.k_epochs) * tc.d_steps

    def schedule(self) -> dict[str, Work]:
        """The whole schedule of cfg.train, by phase (evaluations included)."""
        tc, d = self.cfg.train, self.cfg.data
        mle_epoch = self.generator_update(d.num_train // self.cfg.generator.batch_size
                                          * self.cfg.generator.batch_size)
        return {"pretrain_g": mle_epoch * tc.pretrain_g_epochs + self.evaluation() * pretrain_evals(self.cfg),
                "pretrain_d": self.d_round(tc.pretrain_d_epochs) * tc.pretrain_d_rounds,
                "adversarial": self.iteration() * tc.adv_iterations + self.evaluation() * adversarial_evals(self.cfg)}


def pretrain_evals(cfg: Config) -> int:
    """NLL-oracle evaluations during MLE pretraining: the untrained G, every eval_every epochs, the last."""
    E, every = cfg.train.pretrain_g_epochs, cfg.train.eval_every
    return 1 + E // every + (E % every != 0)


def adversarial_evals(cfg: Config) -> int:
    """NLL-oracle evaluations during adversarial training: every eval_every iterations and the last."""
    n, every = cfg.train.adv_iterations, cfg.train.eval_every
    return n // every + (n % every != 0)
