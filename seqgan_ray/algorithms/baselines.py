"""The paper's MLE baselines as algorithms: their adversarial iterations are MLE epochs, so
they train exactly as long as SeqGAN from the same pretrained generator."""

from __future__ import annotations

from . import Context, check_finite, register


def mle_iteration(ctx: Context, it: int, sampling_prob: float) -> tuple[dict[str, float], str]:
    loss = ctx.mle_epoch(sampling_prob)
    check_finite("adversarial", it, **{"MLE loss": loss})
    return {"gen/mle_nll": loss, "gen/sampling_prob": sampling_prob}, f"nll {loss:.3f}"


@register("mle")
class MLE:
    """One more MLE epoch an iteration."""

    label = "adversarial (mle)"
    reports = ("gen/mle_nll",)
    reads = ()  # of config.METHOD_SECTIONS and METHOD_KEYS: none

    def start(self, ctx: Context, *, fresh: bool) -> None:
        pass

    def iteration(self, ctx: Context, it: int) -> tuple[dict[str, float], str]:
        return mle_iteration(ctx, it, 0.0)


@register("scheduled_sampling")
class ScheduledSampling:
    """Scheduled sampling (Bengio et al. 2015): an MLE epoch whose chance of feeding the model's
    own sample instead of the true token rises by train.sampling_step an iteration."""

    label = "adversarial (scheduled_sampling)"
    reports = ("gen/mle_nll", "gen/sampling_prob")
    reads = ("train.sampling_step",)

    def start(self, ctx: Context, *, fresh: bool) -> None:
        pass

    def iteration(self, ctx: Context, it: int) -> tuple[dict[str, float], str]:
        return mle_iteration(ctx, it, min(1.0, ctx.cfg.train.sampling_step * it))
