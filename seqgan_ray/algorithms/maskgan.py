"""MaskGAN (Fedus, Goodfellow, Dai, ICLR 2018): actor-critic in-filling, after the reference
(tensorflow/models research/maskgan: train_mask_gan.py, model_utils/model_losses.py).

G and D are models.maskgan's seq2seq networks (train.method maskgan builds them). Pretraining
is the trainer's: MaskMLE epochs (the cross-entropy of the missing tokens of fresh masks), then
D rounds (`d_round` below). An adversarial iteration is train.g_steps times:

1. maskgan.d_steps D steps, each on a fresh real batch with a fresh mask: G's copy fills it in,
   D learns real (label 1) against filled (label 0) on the missing tokens (`discriminator_loss`);
2. one G step on a fresh real batch and mask: G fills it in; D's copy scores every token; the
   rewards r_t = log D_t on the missing tokens, their discounted returns R_t (γ =
   maskgan.discount), the critic's values V_t from D's decoder, the advantages R_t − V_t clipped
   at ± maskgan.advantage_clip; REINFORCE on the missing tokens' log-probabilities, and the
   critic's head by squared error to R_t (`generator_objective`).

Each role holds a copy of the other's network (D's copy of G for its fakes, G's copy of D for
its rewards and the critic's features), refreshed before use; masks, samples and dropout come
from the roles' checkpointed random streams, so a run resumes exactly. Evaluation's
unconditional samples (every token masked) are drawn on the rollout pool, split between its
actors; the held-out in-fills on the learner.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import Config, ConfigError, MaskGANConfig
from ..models.maskgan import MaskGANDiscriminator, MaskGANGenerator, make_mask
from . import Context, check_finite, register

EVAL_MASK_SEED = 31  # the masks of the held-out sequences that in-fill evaluation fills, fixed


def discounted_returns(rewards: Tensor, missing: Tensor, gamma: float) -> Tensor:
    """R_t = Σ_{s ≥ t} γ^(s−t) · m_s · r_s for `rewards` (B, T) and `missing` m (B, T): the
    return from token t on, of the missing tokens' rewards only (model_losses.py)."""
    out, running = torch.zeros_like(rewards), torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = missing[:, t] * rewards[:, t] + gamma * running
        out[:, t] = running
    return out


def clipped_advantages(returns: Tensor, values: Tensor, missing: Tensor, clip: float) -> Tensor:
    """A_t = clip(R_t − V_t, ±clip) on the missing tokens, 0 on the present ones (B, T)."""
    return (returns - values).clamp(-clip, clip) * missing


def token_rewards(d_logits: Tensor, missing: Tensor) -> Tensor:
    """r_t = log D_t = log σ(logit_t) on the missing tokens, 0 on the present ones (B, T)."""
    return F.logsigmoid(d_logits) * missing


def reinforce_loss(log_probs: Tensor, advantages: Tensor, missing: Tensor) -> Tensor:
    """−Σ_{b,t} m_t · log G(x_t) · A_t, A constant: summed over the batch and the tokens as the
    reference's objective is."""
    return -(log_probs * advantages.detach() * missing).sum()


def critic_loss(values: Tensor, returns: Tensor, missing: Tensor) -> Tensor:
    """Mean squared error of V_t against R_t over the missing tokens."""
    return ((values - returns.detach()) ** 2 * missing).sum() / missing.sum().clamp(min=1.0)


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, missing: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """D's loss on the missing tokens: the mean of the sigmoid cross-entropies of the real
    sequence's tokens (label 1) and of the filled ones (label 0), each averaged over the missing
    tokens (model_losses.create_dis_loss); and its accuracy on each."""
    n = missing.sum().clamp(min=1.0)
    real = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits), reduction="none")
            * missing).sum() / n
    fake = (F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits), reduction="none")
            * missing).sum() / n
    acc_real = ((real_logits > 0).float() * missing).sum() / n
    acc_fake = ((fake_logits < 0).float() * missing).sum() / n
    return (real + fake) / 2, acc_real, acc_fake


def _mask(generator: MaskGANGenerator, real: Tensor, mc: MaskGANConfig, rng: torch.Generator) -> Tensor:
    return make_mask(real, mc.present_rate, mc.mask_mode, eos=generator.eos_token, generator=rng)


def generator_objective(generator: MaskGANGenerator, critic: MaskGANDiscriminator, rng: torch.Generator,
                        real: Tensor, mc: MaskGANConfig) -> tuple[Tensor, dict[str, float]]:
    """G's REINFORCE loss plus the critic head's squared error for one real batch (B, T), and
    what to log. `critic` is G's copy of D: rewards and the critic's features (no dropout)."""
    present = _mask(generator, real, mc, rng)
    missing = (~present).float()
    filled, log_probs = generator.infill(real, present, generator=rng, dropout=rng)  # (B, T) each
    with torch.no_grad():
        rewards = token_rewards(critic(filled, present), missing)
        returns = discounted_returns(rewards, missing, mc.discount)
        features = critic.critic_features(filled)  # (B, T, H)
    values = generator.critic(features).squeeze(-1)  # (B, T), V(x_0..x_{t-1})
    advantages = clipped_advantages(returns, values.detach(), missing, mc.advantage_clip)
    pg, value_loss = reinforce_loss(log_probs, advantages, missing), critic_loss(values, returns, missing)
    n = float(missing.sum().clamp(min=1.0))
    stats = {"gen/reward_mean": float(rewards.sum()) / n, "gen/return_mean": float((returns * missing).sum()) / n,
             "gen/advantage_mean": float(advantages.sum()) / n, "gen/pg_loss": float(pg.detach()),
             "critic/loss": float(value_loss.detach()), "gen/missing_share": float(missing.mean())}
    return pg + value_loss, stats


def discriminator_objective(discriminator: MaskGANDiscriminator, generator: MaskGANGenerator,
                            rng: torch.Generator, real: Tensor, mc: MaskGANConfig) -> tuple[Tensor, dict[str, float]]:
    """D's loss for one real batch (B, T): a fresh mask, `generator` (D's copy of G) fills it in,
    D (with dropout) scores the real and the filled sequence."""
    present = _mask(generator, real, mc, rng)
    missing = (~present).float()
    with torch.no_grad():
        filled, _ = generator.infill(real, present, generator=rng)
    loss, acc_real, acc_fake = discriminator_loss(discriminator(real, present, generator=rng),
                                                  discriminator(filled, present, generator=rng), missing)
    return loss, {"acc_real": float(acc_real), "acc_fake": float(acc_fake)}


def unique_ngram_share(samples: Tensor, n: int, eos: int | None) -> float:
    """Distinct n-grams over all n-grams of `samples` (S, T), each row up to its <eos>: 1 when
    no n-gram repeats (within or across samples), near 0 for a collapsed generator."""
    grams: list[tuple[int, ...]] = []
    for row in samples.tolist():
        words = row[: row.index(eos)] if eos is not None and eos in row else row
        grams.extend(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else float("nan")


def shortest_sentence_hides_nothing(real: Tensor, eos: int, present_rate: float) -> int | None:
    """The word count of the shortest sentence among `real` (S, T) if it is too short to mask
    at `present_rate` < 1: under 2 words (no word can be hidden with another shown), or a mask
    would hide none of its words (round((1 − rate)·n) = 0); else None."""
    words = int(((real == eos).int().cumsum(1) == 0).sum(1).min())
    too_short = words < 2 or int((1 - present_rate) * words + 0.5) == 0
    return words if present_rate < 1 and too_short else None


@register("maskgan")
class MaskGAN:
    label = "adversarial (maskgan)"
    reads = ("maskgan",)  # of config.METHOD_SECTIONS

    @staticmethod
    def models(cfg: Config) -> str:
        """Its models, for the run's first line (generator.kind and discriminator.kind do not apply)."""
        m = cfg.maskgan
        return (f"generator and discriminator seq2seq LSTMs {m.num_layers} x {m.hidden_dim} with attention, "
                f"a critic head on D (maskgan.*), embedding {cfg.generator.emb_dim}")
    reports = ("eval/infill_oracle_nll", "eval/infill_nll_test", "eval/unique_4gram_share", "gen/reward_mean",
               "gen/pg_loss", "gen/advantage_mean", "critic/loss", "disc/loss", "disc/acc_real", "disc/acc_fake")
    samples_on_pool = True  # evaluation's unconditional samples: drawn by the rollout actors, in parallel

    def check_task(self, cfg: Config, task) -> None:
        """Refuse a corpus whose sentences are too short for a mask to hide a word."""
        if cfg.data.eos_token < 0:
            return
        words = shortest_sentence_hides_nothing(task.real, cfg.data.eos_token, cfg.maskgan.present_rate)
        if words is not None:
            raise ConfigError(f"data.corpus={cfg.data.corpus}: a sentence of {words} word(s) is too short to mask at "
                              f"maskgan.present_rate={cfg.maskgan.present_rate} (a mask hides a word given the others); "
                              f"drop the short sentences, or lower the rate")

    def start(self, ctx: Context, *, fresh: bool) -> None:
        """G's copy of D (rewards, critic features) from D as it is; D's rate from here on is
        discriminator.lr (its pretraining's: maskgan.d_pretrain_lr)."""
        ctx.disc.set_lr(ctx.cfg.discriminator.lr)
        ctx.learner.set_critic(ctx.disc.weights())

    def d_round(self, ctx: Context, epochs: int):
        """A D round of pretraining at maskgan.d_pretrain_lr: `epochs` × train.num_negatives /
        discriminator.batch_size D steps, each on a fresh real batch, mask and in-fill; then G's
        copy of D is refreshed."""
        from ..roles import DiscStats

        B = ctx.cfg.discriminator.batch_size
        steps = max(epochs * (ctx.cfg.train.num_negatives // B), 1)
        ctx.disc.set_lr(ctx.cfg.maskgan.d_pretrain_lr)  # the adversarial phase's `start` sets it back
        stats = self._d_steps(ctx, steps, B)
        ctx.learner.set_critic(ctx.disc.weights())
        return DiscStats(stats["loss"], stats["acc_real"], stats["acc_fake"])

    def _d_steps(self, ctx: Context, steps: int, B: int) -> dict[str, float]:
        ctx.disc.set_opponent(ctx.learner.weights())
        batches = torch.stack([ctx.real_batch(B) for _ in range(steps)])  # (steps, B, T)
        return ctx.disc.objective_steps(discriminator_objective, batches, ctx.cfg.maskgan)

    def iteration(self, ctx: Context, it: int) -> tuple[dict[str, float], str]:
        cfg, mc = ctx.cfg, ctx.cfg.maskgan
        learner, disc = ctx.learner, ctx.disc
        totals: dict[str, float] = {}
        t_d = t_g = 0.0
        G = cfg.train.g_steps
        for _ in range(G):
            t0 = time.perf_counter()
            d = self._d_steps(ctx, mc.d_steps, cfg.discriminator.batch_size)
            check_finite("adversarial", it, **{"discriminator loss": d["loss"]})
            learner.set_critic(disc.weights())
            t1 = time.perf_counter()
            step = learner.adversarial_step(generator_objective, ctx.real_batch(cfg.generator.batch_size), mc)
            check_finite("adversarial", it, **{"MaskGAN loss": step.loss, "generator gradient norm": step.grad_norm})
            t_d, t_g = t_d + t1 - t0, t_g + time.perf_counter() - t1
            metrics = {**step.stats, "gen/grad_norm": step.grad_norm, "disc/loss": d["loss"],
                       "disc/acc_real": d["acc_real"], "disc/acc_fake": d["acc_fake"]}
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value / G
        totals.update({"time/d_train_s": t_d, "time/g_update_s": t_g})
        return totals, f"reward {totals['gen/reward_mean']:.3f}  d {totals['disc/loss']:.3f}"

    def evaluate(self, ctx: Context, step: int, samples: Tensor) -> dict[str, float]:
        """In-filling held-out sequences: the same masks every time (EVAL_MASK_SEED), at
        maskgan.present_rate. eval/infill_nll_test: G's NLL of the missing tokens given the rest;
        on the synthetic task, eval/infill_oracle_nll: the oracle's NLL of the filled sequences;
        on a corpus, eval/infill_bleu2..5 and eval/infill_self_bleu2..5 (TextTask.infill_metrics);
        eval/d_heldout_acc: D's accuracy on those tokens (`d_heldout`).
        eval/unique_4gram_share: of the unconditional `samples` (S, T)."""
        cfg, task = ctx.cfg, ctx.task
        held, present = self._heldout(ctx)
        eos = cfg.data.eos_token if cfg.data.eos_token >= 0 else None
        filled = ctx.learner.infill(held, present)
        metrics = {"eval/infill_nll_test": ctx.learner.masked_nll(held, present),
                   "eval/unique_4gram_share": unique_ngram_share(samples, 4, eos)}
        if hasattr(task, "oracle"):
            scorer = task.scorer
            metrics["eval/infill_oracle_nll"] = scorer.sequence_nll(filled.to(scorer.W.device)).mean().item()
        if hasattr(task, "infill_metrics"):  # a corpus: BLEU and Self-BLEU of the in-fills
            metrics.update(task.infill_metrics(filled))
        if self.trains_d and ctx.phase == "adversarial":
            metrics.update(self._d_accuracy(ctx, held, filled, present))
        return metrics

    trains_d = True  # D learns in the adversarial phase: its held-out accuracy is reported

    def d_heldout(self, ctx: Context, step: int) -> dict[str, float]:
        """eval/d_heldout_acc at the end of D's pretraining: D's per-token accuracy on the held-out
        sequences (never trained on) against G's in-fills of them, on their missing tokens, the
        mean of the two (0.5: chance)."""
        held, present = self._heldout(ctx)
        return self._d_accuracy(ctx, held, ctx.learner.infill(held, present), present)

    @staticmethod
    def _heldout(ctx: Context) -> tuple[Tensor, Tensor]:
        """The first train.eval_samples held-out sequences and their fixed masks."""
        cfg = ctx.cfg
        held = ctx.task.test[: cfg.train.eval_samples]
        eos = cfg.data.eos_token if cfg.data.eos_token >= 0 else None
        return held, make_mask(held, cfg.maskgan.present_rate, cfg.maskgan.mask_mode, eos=eos,
                               generator=torch.Generator().manual_seed(EVAL_MASK_SEED))

    @staticmethod
    def _d_accuracy(ctx: Context, held: Tensor, filled: Tensor, present: Tensor) -> dict[str, float]:
        """eval/d_heldout_acc; and eval/d_trainset_acc, the same on as many training sequences,
        their in-fills and the same masks (far above the held-out accuracy: D recognises its
        training set rather than the data)."""
        acc_real, acc_fake = ctx.learner.critic_token_accuracy(held, filled, present)
        train = ctx.task.real[: len(held)]
        train_present = present[: len(train)]
        t_real, t_fake = ctx.learner.critic_token_accuracy(train, ctx.learner.infill(train, train_present), train_present)
        return {"eval/d_heldout_acc": (acc_real + acc_fake) / 2, "eval/d_trainset_acc": (t_real + t_fake) / 2}


@register("maskmle")
class MaskMLE(MaskGAN):
    """MaskGAN's baseline: its models and pretraining, then more MaskMLE epochs, one an iteration
    (the cross-entropy of the missing tokens of fresh masks). Evaluated as MaskGAN is; D is not
    trained after its pretraining."""

    label = "adversarial (maskmle)"
    reports = ("gen/mle_nll", "eval/infill_oracle_nll", "eval/infill_nll_test", "eval/unique_4gram_share")
    trains_d = False

    def iteration(self, ctx: Context, it: int) -> tuple[dict[str, float], str]:
        from .baselines import mle_iteration

        return mle_iteration(ctx, it, 0.0)
