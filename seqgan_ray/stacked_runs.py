"""K runs of one method that differ only in seed (and learning rates), trained in one process
with their adversarial phases stacked into one model (batched.py): `reproduce --stack-seeds`.

Each run keeps everything a run has: its folder, config, logs, evaluations, checkpoints and
summary, written by its own `Trainer`. What comes before the adversarial phase (a run's own
pretraining, if it has one to do) trains a run at a time; then every iteration of the K runs
is one `batched.StackedSeqGAN.iteration`, after which each run's weights and Adam state go
back into its roles and its trainer logs, evaluates and checkpoints as after its own
iteration. The random streams are the roles' own, so the K runs write what K separate runs
would, up to floating-point rounding (tests/e2e/test_stacked_runs.py).

On a GPU a step of the paper's small models is latency-bound, so K stacked seeds should cost
about one run; on a CPU the arithmetic is K runs' whatever the kernels, and stacking buys
nothing (docs/performance.md, "Seeds stacked into one model").
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Callable

import torch

from .algorithms import check_finite
from .batched import StackedSeqGAN
from .config import Config, ConfigError
from .roles import make_discriminator, make_generator, pick_device
from .tasks.synthetic import SyntheticTask
from .trainer import Interrupted, Result, Trainer, _stop_on_signals, local_roles

# the keys whose values the stacked runs may differ in: the run section, and the rates each
# run's own Adam slice is stepped at (the MLE rate only reaches the pretraining, a run at a time)
MAY_DIFFER = ("generator.lr", "generator.adv_lr", "discriminator.lr")
HEADROOM = 0.8  # of the free memory the estimate may fill
# what the first stacked iteration allocates whatever K (kernel caches, workspaces): the process's
# peak RSS grew 0.69 GiB over one iteration of one run at reproduce_2016.yaml's settings on a CPU
FIXED_BYTES = 512 * 2**20


def stack_problem(cfg: Config) -> str | None:
    """Why runs of `cfg` cannot train stacked, naming the key; None: they can."""
    checks = (
        (cfg.train.method == "seqgan", f"train.method={cfg.train.method}: only SeqGAN's adversarial phase stacks"),
        (cfg.rollout.estimator == "mc", f"rollout.estimator={cfg.rollout.estimator}: only Eq. 4's rollouts (mc) stack"),
        (cfg.rollout.reward == "discriminator",
         f"rollout.reward={cfg.rollout.reward}: only D's score (discriminator) stacks"),
        (cfg.generator.kind == "lstm", f"generator.kind={cfg.generator.kind}: only the lstm generator stacks"),
        (cfg.discriminator.kind == "cnn", f"discriminator.kind={cfg.discriminator.kind}: only the cnn D stacks"),
        (not cfg.data.corpus, f"data.corpus={cfg.data.corpus}: only the synthetic task (fixed-length sequences) stacks"),
    )
    return next((why for ok, why in checks if not ok), None)


def check_stack(cfgs: list[Config], *, what: str = "--stack-seeds") -> None:
    """Refuse runs that cannot train as one stacked model, naming the key, before any work;
    `what` names the setting that asked for it in the error."""
    problem = stack_problem(cfgs[0])
    if problem:
        raise ConfigError(f"{what}: {problem}; train these runs apart")
    first = cfgs[0].to_dict()
    for cfg in cfgs[1:]:
        for section, values in cfg.to_dict().items():
            for key, value in values.items():
                name = f"{section}.{key}"
                if section != "run" and name not in MAY_DIFFER and value != first[section][key]:
                    raise ConfigError(f"{what}: {name} is {first[section][key]!r} in one run and {value!r} "
                                      f"in another; stacked runs may differ only in run.* and "
                                      f"{', '.join(MAY_DIFFER)}: train them apart")


def memory_estimate(cfg: Config, K: int) -> int:
    """Bytes the K stacked runs of `cfg` hold at their peak, by count: FIXED_BYTES, and per run
    G's θ and β and D's weights with gradients and Adam's two moments, Eq. 4's completions of
    every prefix (L·N·B·T tokens), D's activations over one 1,024-row block of them, the
    sequences D trains on. (At reproduce_2016.yaml's settings it says 0.74 GiB for one run and
    1.22 for three; their first iteration grew a CPU process's peak RSS by 0.69 and 0.81 GiB.)"""
    c = cfg.data
    g, d = make_generator(cfg, 0), make_discriminator(cfg, 0)
    weights = 4 * (5 * sum(p.numel() for p in g.parameters()) + 4 * sum(p.numel() for p in d.parameters()))
    B, T, N = cfg.generator.batch_size, c.seq_len, cfg.rollout.num_rollouts
    L = len(range(1, T, cfg.rollout.stride))
    completions = 8 * L * N * B * T
    dc = cfg.discriminator
    widths = sum(n * (T - k + 1) for k, n in zip(d.filter_sizes, [w.shape[0] for w in d.filter_w]))
    d_block = 4 * 1024 * (T * dc.emb_dim + widths + 4 * sum(w.shape[0] for w in d.filter_w))
    negatives = 8 * 2 * (cfg.train.num_negatives + (cfg.train.num_real if cfg.train.num_real > 0 else c.num_train)) * T
    return FIXED_BYTES + K * (weights + completions + d_block + negatives)


def free_memory(device: torch.device) -> int:
    """Bytes free now on `device`: the GPU's, or the machine's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:  # what the kernel would give without swapping: free pages and reclaimable cache
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(cfg: Config, K: int, *, free: int | None = None, what: str = "--stack-seeds",
                 fewer: str = "fewer --seeds") -> None:
    """Refuse K stacked runs that would not fit the device's free memory (an estimate); `what`
    names the setting that asked for them, `fewer` how to ask for fewer."""
    device = pick_device()
    free = free_memory(device) if free is None else free
    need = memory_estimate(cfg, K)
    if need > HEADROOM * free:
        fits = int((HEADROOM * free - FIXED_BYTES) // max((need - FIXED_BYTES) // K, 1))
        raise ConfigError(f"{what}: {K} stacked runs need about {need / 2**30:.1f} GiB (an estimate: weights, "
                          f"Adam, Eq. 4's completions of every prefix, D's activations), but {device.type} has "
                          f"{free / 2**30:.1f} GiB free: stack at most {fits} ({fewer}), or lower "
                          f"rollout.num_rollouts or generator.batch_size")


def train_stacked(runs: list[tuple[Config, SyntheticTask, Path, bool, Path | None]], *,
                  on_iteration: list[Callable[[Trainer, dict[str, float]], None]] | None = None,
                  what: str = "--stack-seeds") -> list[Result]:
    """Train K runs, each (cfg, task, run_dir, resume, start_from) as `Trainer.run` takes them,
    their adversarial phases stacked; `on_iteration[k]` is run k's `Trainer.on_iteration` (a
    Tune trial's report). Returns each run's Result."""
    cfgs = [cfg for cfg, *_ in runs]
    check_stack(cfgs, what=what)
    check_memory(cfgs[0], len(runs), what=what)
    hooks = on_iteration or [None] * len(runs)
    trainers = [Trainer(cfg, task, local_roles(cfg), run_dir, on_iteration=hook)
                for (cfg, task, run_dir, *_), hook in zip(runs, hooks)]
    try:
        with contextlib.ExitStack() as sessions:
            for t, (_, _, _, resume, start_from) in zip(trainers, runs):
                sessions.enter_context(t.session(resume=resume, start_from=None if resume else start_from))
            sessions.enter_context(_stop_on_signals(trainers))
            for t in trainers:  # whatever comes first, a run at a time
                t.pretrain()
            todo = [t for t in trainers if t._todo("adversarial")]
            if todo:
                adversarial_stacked(todo)
            return [t._finish() for t in trainers]
    finally:
        for t in trainers:
            t.roles.shutdown()


def adversarial_stacked(trainers: list[Trainer]) -> None:
    """The adversarial phase of K trainers in lockstep, each iteration one stacked iteration."""
    for t in trainers:
        t.begin_adversarial()
    start = max(t.step for t in trainers)
    for t in trainers:  # one stopped a step behind the others: it catches up alone
        for it in range(t.step + 1, start + 1):
            t.adversarial_iteration(it, None)
    cfg, tc = trainers[0].cfg, trainers[0].cfg.train
    stack = StackedSeqGAN(cfg, [t.learner for t in trainers], [t.disc for t in trainers],
                          [t.pool.workers[0].rng for t in trainers],
                          adv_lrs=[t.cfg.generator.adv_lr for t in trainers],
                          d_lrs=[t.cfg.discriminator.lr for t in trainers])
    K, device = len(trainers), next(stack.theta.parameters()).device
    bar = trainers[0]._progress(f"adversarial ({K} seeds stacked)", tc.adv_iterations)
    for it in range(start + 1, tc.adv_iterations + 1):
        t0 = time.perf_counter()
        # each run's real sequences for each D round, drawn in the order its own iteration draws them
        reals = [torch.stack([_real(t) for t in trainers]).to(device) for _ in range(tc.d_steps)]
        metrics = stack.iteration(reals)
        for name, values in metrics.items():
            check_finite("adversarial", it, **{f"{name} of run {k}": float(v) for k, v in enumerate(values)})
        stack.give_back()
        seconds = time.perf_counter() - t0
        stopped = []
        for k, t in enumerate(trainers):
            own = {name: float(values[k]) for name, values in metrics.items()}
            own.update({"time/iteration_s": seconds, "time/stacked_runs": float(K), "pool/restarts": 0.0})
            try:
                t.end_iteration(it, own, f"reward {own['gen/reward_mean']:.2g}", bar if k == 0 else None)
            except Interrupted:
                stopped.append(t)
        if stopped:  # every run checkpointed at this same step, so they resume together
            for t in trainers:
                if t not in stopped:
                    t.checkpoint()
            raise Interrupted(f"stopped at adversarial step {it} of {K} stacked runs; checkpoints written")
    for t in trainers:
        t._next_phase()


def _real(t: Trainer) -> torch.Tensor:
    """Run `t`'s real sequences for one D round: a fresh sample, or the whole training set."""
    real = t.real_for_d()
    return t.task.real if real is None else real
