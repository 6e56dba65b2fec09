"""An algorithm and a reward of a user's own, defined outside the package: the plug-in test
(tests/unit/test_plugins.py) trains them end to end with no edit to seqgan_ray/."""


from seqgan_ray.algorithms import check_finite, register
from seqgan_ray.rewards import load_reward


def sequence_reinforce_objective(generator, seqs, scores):
    """REINFORCE with one score per sequence and the batch mean as baseline (no rollouts):
    −mean_b (score_b − mean score) · Σ_t log G(y_t | y_<t)."""
    logp = generator.log_probs(seqs)
    mask = generator.mask(seqs)
    total = (logp if mask is None else logp * mask).sum(1)
    return -((scores - scores.mean()) * total).mean()


@register("sequence_reinforce")
class SequenceReinforce:
    """Every iteration: sample a batch, score each whole sequence with rollout.reward (built
    here, in the driver), one REINFORCE step of the learner with the objective above."""

    label = "adversarial (sequence REINFORCE)"

    def start(self, ctx, *, fresh):
        self.reward = load_reward(ctx.cfg.rollout.reward)(ctx.cfg, ctx.task.real)

    def iteration(self, ctx, it):
        seqs = ctx.learner.sample(ctx.cfg.generator.batch_size)
        scores = self.reward(seqs).float()
        step = ctx.learner.update(sequence_reinforce_objective, seqs, scores)
        check_finite("adversarial", it, **{"REINFORCE loss": step.loss})
        return {"gen/pg_loss": step.loss, "gen/reward_mean": float(scores.mean())}, f"reward {scores.mean():.2f}"


class OddsReward:
    """MaliGAN's reward (Che et al. 2017), D/(1 − D): scores with the discriminator, so the
    trainer trains D in the adversarial phase and hands each rollout worker its copy."""

    uses_discriminator = True
    needs_data = False

    def __init__(self, cfg, real, discriminator):
        self.discriminator = discriminator

    def __call__(self, seqs):
        p = self.discriminator.prob_real(seqs)
        return p / (1.0 - p).clamp(min=1e-6)
