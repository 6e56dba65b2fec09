"""Training algorithms, picked by `train.method` from a registry.

An algorithm is what happens in one adversarial iteration, given the roles; the trainer
(seqgan_ray.trainer) owns everything else: pretraining, evaluation, logging, checkpoints and
resume. The built-in ones: `seqgan` (Algorithm 1 of the paper), the paper's MLE
baselines `mle` and `scheduled_sampling`, the relaxed GANs `relgan` and `gsgan`
(relaxed.py), `textgan` (textgan.py), `leakgan` (leakgan.py) and `maskgan` (maskgan.py). Your own plugs in without an edit here, either
registered by name from your code

    from seqgan_ray.algorithms import register

    @register("my_gan")
    class MyGAN: ...

or named as `train.method: mypackage.module:MyGAN`. See docs/design.md, "How to add an
algorithm", and `Algorithm` below for what the class provides.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from ..config import Config, ConfigError, import_named

ALGORITHMS: dict[str, type] = {}  # train.method -> class


class Context(Protocol):
    """What an algorithm is handed each call: the trainer's roles and settings. The roles are
    plain objects or Ray actors behind `RemoteRole`; the algorithm cannot tell which."""

    cfg: Config
    task: Any           # tasks.SyntheticTask or TextTask: task.real has training sequences (S, T) at
                        # hand (a corpus's: a bounded sample; the whole split streams, see mle_epoch)
    learner: Any        # roles.GeneratorLearner: sample, pg_step, update, sync/update_rollout_policy, ...
    disc: Any           # roles.DiscriminatorTrainer: train, weights
    pool: Any           # a rollout pool: rewards (Eq. 4), set_weights
    reward_uses_discriminator: bool  # rollout.reward scores with D (then D is to be trained)
    rollout_restarts: int            # rollout actor restarts so far, over the whole run
    phase: str                       # "pretrain_g", "pretrain_d" or "adversarial": where the schedule is

    def mle_epoch(self, sampling_prob: float = 0.0) -> float:
        """One MLE epoch of G over the whole training data (streamed from a corpus); mean NLL."""

    def d_round(self, epochs: int, fake: Any = None) -> Any:
        """One discriminator round: fresh negatives (or `fake`) against train.num_real real sequences."""

    def generator_samples(self, n: int) -> Any:
        """`n` samples (n, T) of G_θ (LeakGAN's on the rollout pool)."""

    def real_batch(self, n: int) -> Any:
        """`n` real training sequences (n, T), a fresh uniform sample (from a corpus's shards too)."""


class Algorithm(Protocol):
    """One `train.method`. Built with no arguments, once per run; keeps no state of its own
    (what must survive a resume lives in the roles, which the checkpoint holds)."""

    label: str  # the progress line's name for the adversarial phase
    reads: tuple[str, ...]  # the keys of config.METHOD_SECTIONS and METHOD_KEYS it reads ("relaxed",
                            # "relaxed.d_steps", "rollout"); config.validate refuses the others of
                            # METHOD_SECTIONS set, and the commands warn of the rest. Leave it out: no check.
    reports: tuple[str, ...]  # the metrics each iteration returns that a sweep may select by
                              # (besides the task's eval/*). Leave it out: any is allowed.

    @staticmethod
    def defaults(cfg: Config) -> dict[str, Any]:
        """Optional: the values this method brings for keys a run does not set ("generator.kind":
        its own model, ...), from the config so far; config.apply_method_defaults sets them."""

    def start(self, ctx: Context, *, fresh: bool) -> None:
        """Before the adversarial phase's first iteration of this process: `fresh` when the
        phase begins now, False when a resumed run continues it."""

    def iteration(self, ctx: Context, it: int) -> tuple[dict[str, float], str]:
        """Adversarial iteration `it` (1-based): its metrics (logged as they are) and a short
        note for the progress line. Check what can go NaN with `check_finite`."""

    # Optional, looked up with getattr by the trainer (MaskGAN has them all):
    #   check_task(cfg, task): refuse a task the method cannot train on (a ConfigError), before any work;
    #   d_round(ctx, epochs) -> DiscStats: a D round its own way (pretraining's too), for a D that
    #       is not SeqGAN's sequence classifier;
    #   evaluate(ctx, step, samples) -> dict: metrics added to every evaluation (`samples`: its G
    #       samples; ctx.phase says which phase: the relaxed GANs' eval/sampler_oracle_nll is adversarial only).


def register(name: str) -> Callable[[type], type]:
    """A class decorator: `train.method: name` picks the class."""
    def add(cls: type) -> type:
        ALGORITHMS[name] = cls
        return cls
    return add


def load_algorithm(name: str) -> type:
    """The class `train.method` names: a registered one, or module:Class."""
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    if ":" not in name:
        import difflib

        close = difflib.get_close_matches(name.lower(), ALGORITHMS, n=1, cutoff=0.6)
        if close:
            raise ConfigError(f"'train.method' {name!r} is not known; did you mean {close[0]}? "
                              f"(one of {', '.join(ALGORITHMS)})")
    return import_named("train.method", name,
                        what=f"one of {', '.join(ALGORITHMS)} (see docs/design.md, how to add an algorithm)")


def describe(cfg: Config) -> str:
    """What the run trains, for its first lines: the method, its models and the settings the
    method brings (its `defaults`) as they are in force."""
    g, d = cfg.generator, cfg.discriminator
    gen = {"relational_memory": f"relational memory {g.mem_slots} slot(s) x {g.num_heads} heads x {g.head_size}",
           "latent_lstm": f"latent-code LSTM {g.hidden_dim} (code {g.latent_dim})",
           "leakgan": f"LeakGAN Manager/Worker LSTMs {g.hidden_dim}"}.get(g.kind, f"LSTM {g.hidden_dim}")
    filters = f"windows {d.filter_sizes}" if d.filter_sizes else "the paper's windows"
    disc = (f"RelGAN's CNN, {d.num_rep} representations" if d.kind == "relgan" else f"CNN, {filters}")
    method = load_algorithm(cfg.train.method)
    own = method.defaults(cfg) if hasattr(method, "defaults") else {}
    section = lambda k: getattr(getattr(cfg, k.partition(".")[0]), k.partition(".")[2])
    settings = ", ".join(f"{k}={section(k)}" for k in own if k not in ("generator.kind", "discriminator.kind"))
    models = (method.models(cfg) if hasattr(method, "models") else  # a method with models of its own
              f"generator {g.kind} ({gen}, embedding {g.emb_dim}), discriminator {d.kind} ({disc}, embedding {d.emb_dim})")
    return f"method {cfg.train.method}: {models}" + (f"; its settings: {settings}" if settings else "")


class NumericalError(RuntimeError):
    """NaN or inf in a loss, a reward or a weight; the message names the phase, step and tensor."""


def check_finite(phase: str, step: int, **values: Any) -> None:
    """Raise NumericalError naming the first of `values` (floats or tensors; None skipped) that
    is NaN or inf."""
    import math

    import torch

    for name, value in values.items():
        if value is None:
            continue
        ok = bool(torch.isfinite(value).all()) if isinstance(value, torch.Tensor) else math.isfinite(value)
        if not ok:
            raise NumericalError(f"{phase} step {step}: {name} is not finite (NaN or inf); "
                                 f"the last good checkpoint is kept")


def is_relaxed(name: str) -> bool:
    """Whether `train.method` names a relaxed GAN (algorithms/relaxed.py: G steps through D)."""
    return bool(getattr(load_algorithm(name), "relaxed", False))


# The built-in algorithms register themselves, seqgan first (the order error messages list).
from . import seqgan, baselines, relaxed, textgan, leakgan, maskgan  # noqa: E402, F401, I001
