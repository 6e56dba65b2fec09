"""Speed benchmark: rewards, discriminator training, an adversarial iteration, the rollout
pool and scaling, measured side by side in one run.

    python -m seqgan_ray.experiments.bench              # everything: ~6 min on 2 quiet cores
    python -m seqgan_ray.experiments.bench --sections rewards,flops --json bench.json
    python -m seqgan_ray.experiments.bench --quick      # small sizes: ~1 min, most of it starting Ray

Tables go to stdout, progress to stderr. Each figure is the median of a few repeats; figures
that are compared (fast vs reference, float32 vs bfloat16, in-process vs Ray) are measured
interleaved in the same run, because the machine may be shared. Nothing here asserts a
timing. FLOP counts are analytical (seqgan_ray.experiments.flops); "% of peak" compares the FLOP floor
at the peaks measured here by torch.mm with the measured time. docs/performance.md has the
figures of a full run and what they mean.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import Config, load_config
from ..kernels.linear import linear
from ..models.discriminator import bf16_supported, paper_filters
from ..roles import DiscriminatorTrainer, GeneratorLearner, RolloutWorker, make_discriminator, make_generator
from ..rollout import complete_prefixes, mc_rewards, mc_rewards_reference, rollout_uniforms
from ..tasks.synthetic import seeded_oracle
from .flops import Counts, Work, adversarial_evals, pretrain_evals

SECTIONS = ("rewards", "flops", "iteration", "pool", "scaling", "stride", "leakgan", "maskgan", "relgan", "batched",
            "gpu")  # gpu: skipped without one
STRIDES = (1, 2, 4)  # rollout.stride values of the stride section
PRECISIONS = ("float32", "bfloat16")
PAPER_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "paper_synthetic.yaml"
LEAKGAN_CONFIG = PAPER_CONFIG.with_name("leakgan_oracle.yaml")
MASKGAN_CONFIG = PAPER_CONFIG.with_name("maskgan_oracle.yaml")
RELGAN_CONFIG = PAPER_CONFIG.with_name("relgan_oracle.yaml")


@dataclass(frozen=True)
class Sizes:
    """What each section runs; FULL is the paper's setting, QUICK a smoke test."""

    batch: int = 64                  # B of the rewards batch
    seq_len: int = 20                # T
    rollouts: int = 16               # N
    vocab: int = 5000                # V
    ref_rollouts: int = 16           # N of the one reference run (scaled to N when smaller)
    repeats: int = 3                 # timed repeats (median) of the reward batch
    d_sequences: int = 3072          # sequences of the D-training rate measurement (6 parts of 64·k)
    mm_size: int = 2048              # square matmul of the peak measurement
    score_rows: int = 1024           # rows of a D scoring block in the peak measurement (prob_real's)
    iteration_overrides: tuple[str, ...] = ()
    mle_batches: int = 20            # MLE batches timed, scaled to an epoch
    pool_batches: int = 2            # reward batches of the pool comparison
    scaling_batch: int = 4           # B of the scaling grid (work is linear in B)
    scaling_repeats: int = 2
    scaling_T: tuple[int, ...] = (20, 40, 80)
    scaling_N: tuple[int, ...] = (8, 16, 32)
    scaling_V: tuple[int, ...] = (5000, 20000)
    d_scaling_sequences: int = 768   # D-training step time at each T (4 parts of 64·k)
    leakgan_overrides: tuple[str, ...] = ()
    leakgan_negatives: int = 1024    # negatives timed (scaled to train.num_negatives)
    leakgan_repeats: int = 2         # ABBA pairs of the in-process vs pool comparison
    maskgan_overrides: tuple[str, ...] = ()
    maskgan_infills: tuple[int, ...] = (64, 128, 9984)  # a G step's, an iteration's D fakes, an evaluation's
    maskgan_repeats: int = 2         # ABBA pairs
    relgan_maps: tuple[int, ...] = (300, 75)  # RelGAN D's maps a window: its paper's, the family tier's
    relgan_overrides: tuple[str, ...] = ()
    relgan_repeats: int = 2          # ABBA pairs
    batched_k: int = 3               # seeds stacked into one model (seqgan_ray.batched)
    batched_overrides: tuple[str, ...] = ()
    batched_repeats: int = 5         # round-robin repeats
    batched_negatives: int = 1024    # D's negatives (and real sequences) in the timed iteration's D round


FULL = Sizes()
QUICK = Sizes(batch=4, rollouts=2, ref_rollouts=1, repeats=2, d_sequences=384, mm_size=512, score_rows=128,
              iteration_overrides=("data.num_train=256", "train.num_negatives=256", "train.eval_samples=256",
                                   "generator.batch_size=4", "rollout.num_rollouts=2"),
              mle_batches=4, pool_batches=2, scaling_batch=1, scaling_T=(8, 16), scaling_N=(1, 2),
              scaling_V=(500, 1000), scaling_repeats=1, d_scaling_sequences=256,
              leakgan_overrides=("generator.batch_size=4", "rollout.num_rollouts=2", "data.vocab_size=500",
                                 "discriminator.filter_sizes=[2,3]", "discriminator.num_filters=[20,20]"),
              leakgan_negatives=64, leakgan_repeats=1,
              maskgan_overrides=("maskgan.hidden_dim=8", "data.vocab_size=500", "generator.batch_size=16",
                                 "discriminator.batch_size=16"),
              maskgan_infills=(16, 256), maskgan_repeats=1,
              relgan_maps=(20,), relgan_overrides=("data.vocab_size=500", "discriminator.batch_size=16"),
              relgan_repeats=1, batched_overrides=("data.vocab_size=500", "discriminator.filter_sizes=[2,3]",
                                                   "discriminator.num_filters=[20,20]", "rollout.num_rollouts=2"),
              batched_repeats=2, batched_negatives=64)


@dataclass
class Context:
    sizes: Sizes
    results: dict[str, Any] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)  # figures one section shares with another
    started: float = field(default_factory=time.perf_counter)
    cpu_started: float = field(default_factory=time.process_time)

    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    def config(self, precision: str, *, T: int = 0, N: int = 0, V: int = 0) -> Config:
        """Defaults (the paper's G 32/32 and D) at this run's B, T, N, V and the given precision."""
        s = self.sizes
        return load_config(None, [f"data.seq_len={T or s.seq_len}", f"data.vocab_size={V or s.vocab}",
                                  f"rollout.num_rollouts={N or s.rollouts}", f"generator.batch_size={s.batch}",
                                  f"discriminator.precision={precision}"])

    def paper_config(self, precision: str) -> Config:
        return load_config(PAPER_CONFIG, [f"discriminator.precision={precision}", *self.sizes.iteration_overrides])


# --------------------------------------------------------------------------- timing, tables

def clock(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, *, warmup: bool = True) -> dict[str, float]:
    """Median seconds of each fn, run round-robin so that drifting machine load hits all alike."""
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(clock(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def rate(fn: Callable[[], Any], flops: float, *, samples: int = 5, min_s: float = 0.02) -> float:
    """FLOP/s of `fn`: the median of `samples` timings, each of enough calls to last `min_s`."""
    fn()
    calls = max(1, math.ceil(min_s / max(clock(fn), 1e-6)))
    return flops * calls / statistics.median(clock(lambda: [fn() for _ in range(calls)]) for _ in range(samples))


def table(title: str, header: list[str], rows: list[list[Any]], notes: list[str] = ()) -> None:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    cells = [header] + [[cell(v) for v in r] for r in rows]
    width = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n== {title} ==")
    for i, r in enumerate(cells):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, width))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in width))
    for n in notes:
        print(f"  {n}")
    sys.stdout.flush()


def cpu_model() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(isa) or 'no AVX'})"


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs' time that was not idle during `seconds` (from /proc/stat; 0 elsewhere)."""
    def ticks() -> list[int]:
        try:
            return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return []

    a = ticks()
    time.sleep(seconds)
    b = ticks()
    if not a or not b:
        return 0.0
    d = [y - x for x, y in zip(a, b)]
    idle = d[3] + d[4]  # idle + iowait
    return 1.0 - idle / max(sum(d), 1)


def header(ctx: Context) -> None:
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_model(),
            "cpus": os.cpu_count(), "bf16_native": bf16_supported(), "quick": ctx.sizes == QUICK,
            "busy_before": round(cpu_busy(), 2)}
    ctx.results["header"] = info
    print("seqgan_ray.experiments.bench: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    if info["busy_before"] > 0.2:
        # Measured here: with another job on one of the 2 cores, OpenMP's spinning threads made
        # a reward batch 4-6x slower on 2 threads than on 1; OMP_WAIT_POLICY=PASSIVE avoided it.
        ctx.log(f"warning: the CPUs were {info['busy_before']:.0%} busy before starting: another job is "
                "using them, so figures will be slower and noisier (consider OMP_WAIT_POLICY=PASSIVE)")


# --------------------------------------------------------------------------- shared measurements

def reward_inputs(cfg: Config, batch: int, seed: int = 0):
    """Rollout policy β, a batch of sequences and the uniforms `u` of Eq. 4, all seeded."""
    policy = make_generator(cfg, seed).requires_grad_(False)
    seqs = policy.sample(batch, generator=torch.Generator().manual_seed(seed + 1))  # (B, T)
    u = rollout_uniforms(batch, cfg.data.seq_len, cfg.rollout.num_rollouts,
                         generator=torch.Generator().manual_seed(seed + 2))
    return policy, seqs, u


def scorer(cfg: Config):
    """D_φ in cfg's precision, seeded: every precision scores with the same weights."""
    return make_discriminator(cfg, 1).requires_grad_(False).eval()


def paper_rewards(ctx: Context) -> dict[str, float]:
    """Median seconds of one paper-setting reward batch, per precision (measured once per run)."""
    if "rewards" not in ctx.memo:
        s = ctx.sizes
        policy, seqs, u = reward_inputs(ctx.config("float32"), s.batch)
        fns = {p: (lambda d=scorer(ctx.config(p)): mc_rewards(policy, d.prob_real, seqs, s.rollouts, u=u,
                                                              score_rollouts=d.prob_real_rollouts))
               for p in PRECISIONS}
        ctx.log(f"rewards: mc_rewards float32 / bfloat16 interleaved, {s.repeats} repeats")
        ctx.memo["rewards"] = interleaved(fns, s.repeats)
    return ctx.memo["rewards"]


def d_parts(cfgs: dict[str, Config], real: torch.Tensor, fake: torch.Tensor, *,
            parts: int) -> tuple[dict[str, list[float]], int]:
    """One DiscriminatorTrainer epoch over real + fake per precision, run as `parts` part-epochs
    (every parts-th row) alternating between the precisions, after a 4-step warm-up (oneDNN
    makes its kernels on first use). Returns each part's seconds per precision, and the
    B-row steps of one part."""
    B = next(iter(cfgs.values())).discriminator.batch_size
    trainers = {p: DiscriminatorTrainer(cfg, 10) for p, cfg in cfgs.items()}
    for trainer in trainers.values():
        trainer.set_data(real[:2 * B])
        trainer.train(fake[:2 * B], 1)
    times: dict[str, list[float]] = {p: [] for p in cfgs}
    for i in range(parts):
        for p, trainer in trainers.items():
            trainer.set_data(real[i::parts])
            times[p].append(clock(lambda: trainer.train(fake[i::parts], 1)))
    return times, math.ceil((len(real[::parts]) + len(fake[::parts])) / B)


def d_epoch(cfgs: dict[str, Config], real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """Seconds of one epoch over real + fake per precision (4 interleaved parts, summed)."""
    times, _ = d_parts(cfgs, real, fake, parts=4)
    return {p: sum(t) for p, t in times.items()}


def d_train_step(cfgs: dict[str, Config], sequences: int, *, parts: int = 4) -> dict[str, float]:
    """Seconds per B-row step of D training over `sequences` random ones, per precision: the
    median over `parts` interleaved parts (a burst of load on a shared machine hits one part)."""
    cfg = next(iter(cfgs.values()))
    tokens = torch.randint(cfg.data.vocab_size, (sequences, cfg.data.seq_len),
                           generator=torch.Generator().manual_seed(0))  # D's cost ignores the tokens
    times, steps = d_parts(cfgs, tokens[:sequences // 2], tokens[sequences // 2:], parts=parts)
    return {p: statistics.median(t) / steps for p, t in times.items()}


# --------------------------------------------------------------------------- 1. rewards

def section_rewards(ctx: Context) -> None:
    s = ctx.sizes
    fast = paper_rewards(ctx)
    policy, seqs, u = reward_inputs(ctx.config("float32"), s.batch)
    scale = s.rollouts / s.ref_rollouts
    rows, out = [], {}
    for p in PRECISIONS:
        ctx.log(f"rewards: mc_rewards_reference {p}, once with N={s.ref_rollouts}")
        d = scorer(ctx.config(p))
        ref = clock(lambda: mc_rewards_reference(policy, d.prob_real, seqs, s.ref_rollouts,
                                                 u=u[:s.ref_rollouts])) * scale
        out[p] = {"mc_rewards_s": fast[p], "reference_s": ref, "speedup": ref / fast[p]}
        rows.append([p, fast[p], ref, f"{ref / fast[p]:.2f}x"])
    ctx.results["rewards"] = {"batch": s.batch, "seq_len": s.seq_len, "rollouts": s.rollouts, "vocab": s.vocab,
                              "reference_rollouts": s.ref_rollouts, **out}
    how = (f"reference run once with N={s.ref_rollouts}, scaled x{scale:g} to N={s.rollouts}"
           if scale != 1 else f"reference run once (N={s.rollouts})")
    table(f"rewards: one batch of Eq. 4 (B={s.batch}, T={s.seq_len}, N={s.rollouts}, V={s.vocab}; "
          f"G 32/32, paper D; D precision as given, G float32)",
          ["D precision", "mc_rewards s", "reference s", "speedup"], rows,
          [f"mc_rewards: median of {s.repeats}, interleaved; {how}; same policy, sequences and u",
           "the reference uses the same sampler and D; it re-runs every prefix (2x the generator's "
           "row-steps) and scores 64 rows at a time, D's work being equal"])


# --------------------------------------------------------------------------- 2. FLOP rates

def mm_shapes(ctx: Context) -> dict[str, tuple[int, int, int]]:
    """(M, K, N) of torch.mm(A (M, K), W.t()) as the discriminator does them, and a square one."""
    E, T, B, n, R = 64, ctx.sizes.seq_len, 64, ctx.sizes.mm_size, ctx.sizes.score_rows
    F = sum(paper_filters(T)[1])  # the highway's width
    return {f"square {n}": (n, n, n),
            "D window k=5, scoring block": (R * (T - 4), 5 * E, 200),
            "D window k=5, train step": (B * (T - 4), 5 * E, 200),
            "D window k=15, train step": (B * max(T - 14, 1), 15 * E, 160),
            "D highway, scoring block": (R, F, 2 * F),
            "D highway, train step": (B, F, 2 * F)}


def matmul_peaks(ctx: Context) -> dict[str, dict[str, float]]:
    """GFLOP/s per shape and precision of the product the code runs (`kernels.linear`: oneDNN
    on CPU) and of torch.mm (MKL for float32 on CPU) beside it; 'peak' is the best of all."""
    if "peaks" not in ctx.memo:
        out: dict[str, dict[str, float]] = {p: {} for p in PRECISIONS}
        for name, (M, K, N) in mm_shapes(ctx).items():
            ctx.log(f"flops: linear and torch.mm {name} ({M}x{K} @ {K}x{N})")
            for p, dt in zip(PRECISIONS, (torch.float32, torch.bfloat16)):
                a, w = torch.randn(M, K).to(dt), torch.randn(N, K).to(dt)
                out[p][name] = rate(lambda: linear(a, w), 2 * M * K * N) / 1e9
                out[p][f"torch.mm {name}"] = rate(lambda: torch.mm(a, w.t()), 2 * M * K * N) / 1e9
        for p in PRECISIONS:
            out[p]["peak"] = max(out[p].values())
        ctx.memo["peaks"] = out
    return ctx.memo["peaks"]


def reward_parts(ctx: Context) -> dict[str, float]:
    """Median seconds of a reward batch's two halves, interleaved: the completions ('gen', G
    in float32) and scoring them by D per precision, both as the rollout workers do it (the
    windows inside each prefix once: '<precision>') and every row whole ('<precision> whole')."""
    s = ctx.sizes
    policy, seqs, u = reward_inputs(ctx.config("float32"), s.batch)
    completions = complete_prefixes(policy, seqs, s.rollouts, u)
    scored = torch.cat([completions.reshape(-1, s.seq_len), seqs])  # ((T−1)·N·B + B, T)
    scorers = {p: scorer(ctx.config(p)) for p in PRECISIONS}
    ctx.log("flops: rewards split into completions and scoring (prefix-shared and whole), interleaved")
    fns: dict[str, Callable[[], Any]] = {"gen": lambda: complete_prefixes(policy, seqs, s.rollouts, u)}
    for p, d in scorers.items():
        fns[p] = lambda d=d: (d.prob_real_rollouts(seqs, completions), d.prob_real(seqs))
        fns[f"{p} whole"] = lambda d=d: d.prob_real(scored)
    return interleaved(fns, s.repeats, warmup=False)


def section_flops(ctx: Context) -> None:
    s = ctx.sizes
    peaks = matmul_peaks(ctx)
    shapes = mm_shapes(ctx)
    table("flops: matmul rate (GFLOP/s, median of 5): kernels.linear (what the code runs) and torch.mm",
          ["shape", "M x K x N", *(f"{p} {how}" for p in PRECISIONS for how in ("linear", "torch.mm"))],
          [[k, "x".join(map(str, shapes[k])), *(peaks[p][key] for p in PRECISIONS for key in (k, f"torch.mm {k}"))]
           for k in shapes] + [["peak", "best", *(x for p in PRECISIONS for x in (peaks[p]["peak"], ""))]],
          ["kernels.linear is oneDNN on CPU (float32 and bfloat16); torch.mm is MKL for float32 on CPU"])
    total = paper_rewards(ctx)  # also the warm-up of the split below
    t = reward_parts(ctx)
    ctx.log(f"flops: D training, {s.d_sequences} sequences per precision")
    d_step = d_train_step({p: ctx.config(p) for p in PRECISIONS}, s.d_sequences, parts=6)
    counts = Counts(ctx.config("float32"))
    work = counts.rewards(s.batch)
    whole = counts.rewards(s.batch, shared_prefix=False)
    train = counts.discriminator_training(64)
    out: dict[str, Any] = {"peak_gflops": {p: peaks[p]["peak"] for p in PRECISIONS}}
    rows = []
    for p in PRECISIONS:
        p32, pd = peaks["float32"]["peak"] * 1e9, peaks[p]["peak"] * 1e9
        items = {"rewards: completions (G)": (Work(generator=work.generator), t["gen"]),
                 "rewards: scoring (D), prefix-shared": (Work(discriminator=work.discriminator), t[p]),
                 "rewards: scoring (D), every row whole": (Work(discriminator=whole.discriminator), t[f"{p} whole"]),
                 "rewards: mc_rewards total": (work, total[p]),
                 "D training step (B=64)": (train, d_step[p])}
        for name, (w, sec) in items.items():
            pct = 100 * w.floor_s(p32, pd) / sec
            out.setdefault(p, {})[name] = {"gflop": w.total / 1e9, "s": sec, "gflops": w.total / sec / 1e9,
                                           "pct_of_peak": pct}
            rows.append([p, name, w.total / 1e9, sec, w.total / sec / 1e9, f"{pct:.0f}%"])
    ctx.results["flops"] = out
    table(f"flops: achieved rate (B={s.batch}, T={s.seq_len}, N={s.rollouts}, V={s.vocab})",
          ["D precision", "work", "GFLOP", "s", "GFLOP/s", "% of peak"], rows,
          ["% of peak = (G FLOPs / float32 peak + D FLOPs / peak of D's precision) / measured time",
           "prefix-shared scoring (what the rollout workers run) computes the windows inside each kept "
           "prefix once per sequence: fewer FLOPs for the same scores than scoring every row whole",
           f"D training: DiscriminatorTrainer.train over {s.d_sequences} sequences in 6 interleaved parts, "
           "median part per step; training counted as 3x the forward"])


# --------------------------------------------------------------------------- 3. one iteration

@contextmanager
def embedded_ray(num_cpus: int):
    import ray

    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def iteration_parts(ctx: Context, cfg: Config) -> tuple[dict[str, float], torch.Tensor]:
    """Seconds of the precision-independent parts of an iteration and of pretraining, and
    the real data (S, T) the discriminator trains on."""
    s, tc = ctx.sizes, cfg.train
    B = cfg.generator.batch_size
    oracle = seeded_oracle(cfg.data)  # same shape as the paper's oracle; its cost is the same
    ctx.log(f"iteration: {cfg.data.num_train} real sequences from the oracle")
    real = oracle.sample(cfg.data.num_train, generator=torch.Generator().manual_seed(1))
    learner = GeneratorLearner(cfg, 0)
    learner.set_data(real[:s.mle_batches * B])
    learner.sync_rollout_policy()
    seqs = learner.sample(B)
    rewards = torch.rand(B, cfg.data.seq_len)
    ctx.log("iteration: sample, PG update, beta update, MLE epoch")
    t = interleaved({"sample": lambda: learner.sample(B), "pg_update": lambda: learner.pg_step(seqs, rewards),
                     "beta_update": learner.update_rollout_policy}, 3)
    t["mle_epoch"] = clock(learner.pretrain_epoch) * (cfg.data.num_train // B) / s.mle_batches
    ctx.log(f"iteration: {tc.num_negatives} negatives; evaluation of {tc.eval_samples} samples")
    t["negatives"] = clock(lambda: learner.sample(tc.num_negatives))
    t["evaluation"] = clock(lambda: oracle.nll(learner.sample(tc.eval_samples)))
    trainer = DiscriminatorTrainer(cfg, 10)
    with embedded_ray(2) as ray:
        ctx.log("iteration: weight broadcast (state_dict copies + ray.put)")
        t["broadcast"] = interleaved({"b": lambda: (ray.put(learner.rollout_weights()),
                                                    ray.put(trainer.weights()))}, 3)["b"]
    return t, real


def section_iteration(ctx: Context) -> None:
    cfgs = {p: ctx.paper_config(p) for p in PRECISIONS}
    cfg, tc = cfgs["float32"], cfgs["float32"].train
    parts, real = iteration_parts(ctx, cfg)
    rewards = paper_rewards(ctx)  # the paper config's batch is the rewards section's
    fake = real[torch.randperm(len(real))][:tc.num_negatives]  # D's cost ignores the tokens
    ctx.log(f"iteration: one D epoch over {len(real)} real + {len(fake)} fake per precision, in 4 interleaved parts")
    epochs = d_epoch(cfgs, real, fake)
    per: dict[str, dict[str, float]] = {}
    for p in PRECISIONS:
        epoch = epochs[p]
        d_round = lambda k: parts["negatives"] + k * epoch
        per[p] = {"sample": parts["sample"], "rewards": rewards[p], "pg_update": parts["pg_update"],
                  "beta_update": parts["beta_update"], "d_epoch": epoch,
                  "d_training": tc.d_steps * d_round(tc.k_epochs), "broadcast": parts["broadcast"],
                  "evaluation": parts["evaluation"] / tc.eval_every}
        per[p]["iteration"] = sum(v for k, v in per[p].items() if k != "d_epoch")
        per[p]["schedule_h"] = {
            "pretrain_g": (tc.pretrain_g_epochs * parts["mle_epoch"] + pretrain_evals(cfg) * parts["evaluation"]) / 3600,
            "pretrain_d": tc.pretrain_d_rounds * d_round(tc.pretrain_d_epochs) / 3600,
            "adversarial": (tc.adv_iterations * (per[p]["iteration"] - per[p]["evaluation"])
                            + adversarial_evals(cfg) * parts["evaluation"]) / 3600}
        per[p]["schedule_h"]["total"] = sum(per[p]["schedule_h"].values())
    floors = schedule_floor(ctx, cfgs)
    ctx.results["iteration"] = {"parts_s": parts, **per, "floor_h": floors}
    print_iteration(ctx, cfg, parts, per, floors)


def schedule_floor(ctx: Context, cfgs: dict[str, Config]) -> dict[str, dict[str, float]]:
    """Hours of the whole schedule and TFLOP per iteration at the peaks measured in this run."""
    peaks = matmul_peaks(ctx)
    out = {}
    for p, cfg in cfgs.items():
        counts = Counts(cfg)
        total = sum(counts.schedule().values(), Work())
        p32, pd = peaks["float32"]["peak"] * 1e9, peaks[p]["peak"] * 1e9
        out[p] = {"schedule_h": total.floor_s(p32, pd) / 3600, "schedule_pflop": total.total / 1e15,
                  "iteration_tflop": counts.iteration().total / 1e12,
                  "iteration_s": counts.iteration().floor_s(p32, pd)}
    return out


def print_iteration(ctx: Context, cfg: Config, parts: dict[str, float], per: dict, floors: dict) -> None:
    tc, B = cfg.train, cfg.generator.batch_size
    names = [("sample", f"sample the batch (B={B})", "median of 3"),
             ("rewards", "rewards, one batch (in-process, 2 threads)", "median, rewards section"),
             ("pg_update", "generator PG update (Eq. 8)", "median of 3"),
             ("beta_update", "beta update", "median of 3"),
             ("d_training", f"D training: {tc.d_steps} x ({tc.num_negatives} negatives + {tc.k_epochs} epochs)",
              "projected from 1 epoch + 1 negatives"),
             ("broadcast", "weight broadcast (copies + 2 ray.put)", "median of 3, embedded Ray"),
             ("evaluation", f"evaluation ({tc.eval_samples} samples) / {tc.eval_every}", "measured once"),
             ("iteration", "iteration, projected", "sum")]
    table(f"iteration: one adversarial iteration of {PAPER_CONFIG.name} (seconds)",
          ["part", *PRECISIONS, "how"], [[label, *(per[p][k] for p in PRECISIONS), how] for k, label, how in names],
          [f"one D epoch ({cfg.data.num_train} real + {tc.num_negatives} fake): "
           + ", ".join(f"{p} {per[p]['d_epoch']:.1f} s" for p in PRECISIONS)
           + f"; negatives {parts['negatives']:.2f} s; MLE epoch {parts['mle_epoch']:.1f} s "
             f"(projected from {ctx.sizes.mle_batches} batches)"])
    rows = [[ph, *(per[p]["schedule_h"][ph] for p in PRECISIONS)] for ph in ("pretrain_g", "pretrain_d", "adversarial", "total")]
    rows.append(["FLOP floor at the measured peak", *(floors[p]["schedule_h"] for p in PRECISIONS)])
    table(f"iteration: projected full schedule (hours; {tc.pretrain_g_epochs} MLE epochs, {tc.pretrain_d_rounds} "
          f"D rounds, {tc.adv_iterations} iterations)", ["phase", *PRECISIONS], rows,
          [f"FLOPs: {floors['float32']['iteration_tflop']:.1f} TFLOP per iteration, "
           f"{floors['float32']['schedule_pflop']:.2f} PFLOP in all; at the peak one iteration takes at least "
           + ", ".join(f"{p} {floors[p]['iteration_s']:.0f} s" for p in PRECISIONS)])


# --------------------------------------------------------------------------- 4. rollout pool

@contextmanager
def two_node_cluster(head_cpus: int = 1, node_cpus: int = 1):
    """A simulated cluster of two nodes on this machine (ray.cluster_utils), of 1 CPU each
    unless told."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus})
    cluster.add_node(num_cpus=node_cpus)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        cluster.shutdown()


def compare_pool(local, make_pool: Callable[[], Any], batches: list[torch.Tensor],
                 weights: tuple) -> dict[str, float]:
    """The same reward batches in-process and on a pool, interleaved batch by batch."""
    pool = make_pool()
    try:
        nodes = len(set(pool.node_ids()))  # also waits until every actor has started
        broadcast = clock(lambda: pool.set_weights(*weights))
        for p in (local, pool):
            p.rewards(batches[0][:4])  # warm-up (and the actors' first call)
        time.sleep(3)  # let Ray's freshly started worker processes finish loading
        t = {local: 0.0, pool: 0.0}
        for i, seqs in enumerate(batches):
            for p in ((local, pool) if i % 2 == 0 else (pool, local)):  # ABBA: linear drift cancels
                t[p] += clock(lambda: p.rewards(seqs))
        return {"in_process_s": t[local], "ray_s": t[pool], "overhead_pct": 100 * (t[pool] / t[local] - 1),
                "broadcast_s": broadcast, "nodes": nodes}
    finally:
        pool.shutdown()


def section_pool(ctx: Context) -> None:
    from ..distributed.cluster import ActorResources
    from ..distributed.pool import RolloutPool
    from ..roles import LocalRolloutPool, cpu_state

    s = ctx.sizes
    cfg = ctx.config("float32")
    local = LocalRolloutPool(cfg, 100, 1)
    worker = local.workers[0]
    weights = (cpu_state(worker.policy), cpu_state(worker.discriminator))
    batches = [worker.policy.sample(s.batch, generator=torch.Generator().manual_seed(i)) for i in range(s.pool_batches)]
    setups = [("1 actor x 2 threads", embedded_ray, 1, ActorResources(num_cpus=2, threads=2)),
              ("2 actors x 1 thread", embedded_ray, 2, ActorResources(num_cpus=1, threads=1)),
              ("2 nodes x 1 CPU (simulated)", lambda _: two_node_cluster(), 2, ActorResources(num_cpus=1, threads=1))]
    out, rows = {}, []
    for label, start, size, res in setups:
        ctx.log(f"pool: {label}, {s.pool_batches} batches vs in-process")
        with start(2):
            out[label] = compare_pool(local, lambda: RolloutPool.actors(cfg, 100, size, res), batches, weights)
        r = out[label]
        rows.append([label, r["nodes"], r["in_process_s"], r["ray_s"], f"{r['overhead_pct']:+.1f}%", r["broadcast_s"]])
    ctx.results["pool"] = {"batches": s.pool_batches, **out}
    table(f"pool: {s.pool_batches} reward batches (B={s.batch}, N={s.rollouts}, float32), in-process (2 threads) vs Ray",
          ["Ray pool", "nodes", "in-process s", "Ray s", "Ray overhead", "set_weights s"], rows,
          ["in-process and Ray measured batch by batch, interleaved (ABBA); set_weights: ray.put + load into "
           "every actor; a negative overhead means the pool was faster"])


# --------------------------------------------------------------------------- 5. scaling

def section_scaling(ctx: Context) -> None:
    s, B = ctx.sizes, ctx.sizes.scaling_batch
    grid = ([(T, s.rollouts, s.vocab) for T in s.scaling_T] + [(s.seq_len, N, s.vocab) for N in s.scaling_N]
            + [(s.seq_len, s.rollouts, V) for V in s.scaling_V])
    grid = list(dict.fromkeys(grid))
    rows, out = [], []
    for T, N, V in grid:
        ctx.log(f"scaling: rewards T={T} N={N} V={V}, float32 / bfloat16 interleaved")
        policy, seqs, u = reward_inputs(ctx.config("float32", T=T, N=N, V=V), B)
        fns = {}
        for p in PRECISIONS:
            d = scorer(ctx.config(p, T=T, N=N, V=V))
            mc_rewards(policy, d.prob_real, seqs[:1], 1, u=u[:1, ..., :1, :])  # warm-up, B = N = 1
            fns[p] = lambda d=d: mc_rewards(policy, d.prob_real, seqs, N, u=u, score_rollouts=d.prob_real_rollouts)
        rec: dict[str, Any] = {"T": T, "N": N, "V": V, "batch": B,
                               **interleaved(fns, s.scaling_repeats, warmup=False)}
        rec["gflop"] = Counts(ctx.config("float32", T=T, N=N, V=V)).rewards(B).total / 1e9
        out.append(rec)
        rows.append([T, N, V, rec["gflop"], *(x for p in PRECISIONS for x in (rec[p], rec["gflop"] / rec[p]))])
    d_rows, d_out = [], []
    for T in s.scaling_T:
        ctx.log(f"scaling: D training step T={T}")
        rec = {"T": T, "gflop": Counts(ctx.config("float32", T=T)).discriminator_training(64).total / 1e9,
               **d_train_step({p: ctx.config(p, T=T) for p in PRECISIONS}, s.d_scaling_sequences)}
        d_out.append(rec)
        d_rows.append([T, rec["gflop"], *(x for p in PRECISIONS for x in (rec[p] * 1e3, rec["gflop"] / rec[p]))])
    ctx.results["scaling"] = {"rewards": out, "d_train_step": d_out}
    table(f"scaling: rewards of one batch of B={B} (mc_rewards; work and time are linear in B)",
          ["T", "N", "V", "GFLOP", "fp32 s", "GFLOP/s", "bf16 s", "GFLOP/s"], rows,
          [f"median of {s.scaling_repeats}, interleaved, after a B = N = 1 warm-up; "
           "D filters: the paper's rule for T (discriminator.paper_filters)"])
    table("scaling: D training step (B=64)", ["T", "GFLOP", "fp32 ms", "GFLOP/s", "bf16 ms", "GFLOP/s"], d_rows,
          [f"DiscriminatorTrainer.train over {s.d_scaling_sequences} sequences in 4 interleaved parts, "
           "median part per step"])


# --------------------------------------------------------------------------- 6. rollout stride

def section_stride(ctx: Context) -> None:
    """A reward batch at rollout.stride 1, 2 and 4, side by side at each T (float32)."""
    s, B = ctx.sizes, ctx.sizes.scaling_batch
    rows, out = [], []
    for T in s.scaling_T:
        ctx.log(f"stride: rewards T={T}, stride {', '.join(map(str, STRIDES))} interleaved")
        policy, seqs, u = reward_inputs(ctx.config("float32", T=T), B)
        d = scorer(ctx.config("float32", T=T))
        mc_rewards(policy, d.prob_real, seqs[:1], 1, u=u[:1, ..., :1, :])  # warm-up, B = N = 1
        fns = {c: (lambda c=c: mc_rewards(policy, d.prob_real, seqs, s.rollouts, u=u,
                                          score_rollouts=d.prob_real_rollouts, stride=c)) for c in STRIDES}
        rec = interleaved(fns, s.scaling_repeats, warmup=False)
        out.append({"T": T, "batch": B, **{f"stride{c}_s": rec[c] for c in STRIDES}})
        rows.append([T, *(x for c in STRIDES for x in (rec[c], rec[STRIDES[0]] / rec[c]))])
    ctx.results["stride"] = out
    table(f"stride: rewards of one batch of B={B}, N={s.rollouts}, V={s.vocab}, float32, by rollout.stride",
          ["T", *(h for c in STRIDES for h in (f"stride {c} s", "speedup"))], rows,
          [f"median of {s.scaling_repeats}, interleaved, after a B = N = 1 warm-up; stride c rolls out from "
           "the prefixes c, 2c, ... (rollout.stride)"])


# --------------------------------------------------------------------------- 6. LeakGAN

def section_leakgan(ctx: Context) -> None:
    """One LeakGAN iteration of configs/leakgan_oracle.yaml by its parts: the G batch, its
    rewards, the G step, negatives, a D epoch; rewards and negatives (G through D at every
    token) in-process and on 2 rollout actors, interleaved ABBA."""
    from ..distributed.cluster import ActorResources
    from ..distributed.pool import RolloutPool
    from ..roles import LocalRolloutPool
    from ..algorithms.leakgan import leakgan_objective

    s = ctx.sizes
    cfg = load_config(LEAKGAN_CONFIG, ["data.oracle_dir=", *s.leakgan_overrides])
    tc, B, n = cfg.train, cfg.generator.batch_size, s.leakgan_negatives
    learner, trainer = GeneratorLearner(cfg, 0), DiscriminatorTrainer(cfg, 10)
    learner.set_critic(trainer.weights())
    weights = learner.weights()
    local = LocalRolloutPool(cfg, 100, 1)
    local.set_weights(weights, None)
    seqs = learner.sample(B, update=True)
    rewards = torch.rand(B, -(-cfg.data.seq_len // cfg.leakgan.step_size))
    ctx.log(f"leakgan: G batch, G step, D epoch over {n} real + {n} fake")
    t = interleaved({"sample": lambda: learner.sample(B, update=True),
                     "g_update": lambda: learner.update(leakgan_objective, seqs, rewards, "token")}, 2)
    real = seeded_oracle(cfg.data).sample(n, generator=torch.Generator().manual_seed(1))
    fake = local.sample(n)
    trainer.set_data(real[:2 * cfg.discriminator.batch_size])
    trainer.train(fake[:2 * cfg.discriminator.batch_size], 1)  # warm-up
    trainer.set_data(real)
    t["d_epoch"] = clock(lambda: trainer.train(fake, 1))
    with embedded_ray(2):
        ctx.log(f"leakgan: rewards and {n} negatives, in-process (2 threads) vs 2 actors x 1 thread")
        pool = RolloutPool.actors(cfg, 100, 2, ActorResources(num_cpus=1, threads=1))
        try:
            pool.devices()  # waits until both actors have started
            t["broadcast"] = clock(lambda: pool.set_weights(weights, None))
            for p in (local, pool):  # warm-up, and the actors' first call
                p.rewards(seqs[:2])
                p.sample(2)
            time.sleep(3)
            pairs = {"rewards": lambda p: p.rewards(seqs), "negatives": lambda p: p.sample(n)}
            acc = {(k, where): 0.0 for k in pairs for where in ("local", "pool")}
            for i in range(2 * s.leakgan_repeats):
                for where, p in ((("local", local), ("pool", pool)) if i % 2 == 0 else (("pool", pool), ("local", local))):
                    for k, fn in pairs.items():
                        acc[k, where] += clock(lambda: fn(p)) / (2 * s.leakgan_repeats)
        finally:
            pool.shutdown()
    scale = tc.num_negatives / n
    per = {where: {"sample": t["sample"], "rewards": acc["rewards", where], "g_update": t["g_update"],
                   "negatives": tc.d_steps * scale * acc["negatives", where],
                   "d_training": tc.d_steps * tc.k_epochs * scale * t["d_epoch"]} for where in ("local", "pool")}
    for where in per:
        per[where]["iteration"] = sum(per[where].values())
    ctx.results["leakgan"] = {"parts_s": t, "negatives_timed": n, "in_process": per["local"], "two_actors": per["pool"],
                              "rewards_speedup": acc["rewards", "local"] / acc["rewards", "pool"],
                              "negatives_speedup": acc["negatives", "local"] / acc["negatives", "pool"]}
    rows = [[k, per["local"][k], per["pool"][k], per["local"][k] / per["pool"][k]] for k in per["local"]]
    table(f"leakgan: one iteration of {LEAKGAN_CONFIG.name} (B={B}, N={cfg.rollout.num_rollouts}, T={cfg.data.seq_len}, "
          f"V={cfg.data.vocab_size}; {tc.d_steps} D rounds of {tc.num_negatives} negatives, {tc.k_epochs} epochs)",
          ["part", "in-process s", "2 actors s", "speed-up"], rows,
          [f"rewards and negatives measured interleaved (ABBA, {s.leakgan_repeats} pair(s)); negatives timed on "
           f"{n} and scaled to {tc.num_negatives}, a D epoch on {n} + {n} and scaled; G batch, G step and D "
           "training run in the learner and D actors either way",
           f"broadcast of G (with its D copy) to 2 actors: {t['broadcast']:.3g} s"])


def section_maskgan(ctx: Context) -> None:
    """One MaskGAN iteration of configs/maskgan_oracle.yaml by its parts (maskgan.d_steps D steps,
    each filling a batch in; one G step), and in-fills of held-out-like sequences in-process
    (this process's threads) against 2 rollout actors x 1 thread, interleaved ABBA, at the sizes
    the method fills: a G step's batch, an iteration's D fakes, an evaluation's sequences."""
    from ..algorithms.maskgan import discriminator_objective, generator_objective
    from ..distributed.cluster import ActorResources
    from ..distributed.pool import RolloutPool
    from ..models.maskgan import make_mask
    from ..roles import LocalRolloutPool

    s = ctx.sizes
    cfg = load_config(MASKGAN_CONFIG, ["data.oracle_dir=", *s.maskgan_overrides])
    mc, B, DB = cfg.maskgan, cfg.generator.batch_size, cfg.discriminator.batch_size
    learner, trainer = GeneratorLearner(cfg, 0), DiscriminatorTrainer(cfg, 10)
    learner.set_critic(trainer.weights())
    trainer.set_opponent(learner.weights())
    oracle = seeded_oracle(cfg.data)
    real = oracle.sample(max(s.maskgan_infills), generator=torch.Generator().manual_seed(1))
    present = make_mask(real, mc.present_rate, mc.mask_mode, eos=None, generator=torch.Generator().manual_seed(2))
    ctx.log(f"maskgan: {mc.d_steps} D steps of {DB}, a G step of {B}")
    d_batches = torch.stack([real[:DB]] * mc.d_steps)
    t = interleaved({"d_steps": lambda: trainer.objective_steps(discriminator_objective, d_batches, mc),
                     "g_step": lambda: learner.adversarial_step(generator_objective, real[:B], mc)}, 2)
    weights = learner.weights()
    local = LocalRolloutPool(cfg, 100, 1)
    local.set_weights(weights, None)
    with embedded_ray(2):
        ctx.log(f"maskgan: in-fills of {', '.join(map(str, s.maskgan_infills))} sequences, in-process "
                f"({torch.get_num_threads()} threads) vs 2 actors x 1 thread")
        pool = RolloutPool.actors(cfg, 100, 2, ActorResources(num_cpus=1, threads=1))
        try:
            pool.devices()  # waits until both actors have started
            t["broadcast"] = clock(lambda: pool.set_weights(weights, None))
            for p in (local, pool):  # warm-up, and the actors' first call
                p.infill(real[:4], present[:4])
            time.sleep(3)
            acc = {(n, where): 0.0 for n in s.maskgan_infills for where in ("local", "pool")}
            for i in range(2 * s.maskgan_repeats):
                for where, p in ((("local", local), ("pool", pool)) if i % 2 == 0 else (("pool", pool), ("local", local))):
                    for n in s.maskgan_infills:
                        acc[n, where] += clock(lambda: p.infill(real[:n], present[:n])) / (2 * s.maskgan_repeats)
        finally:
            pool.shutdown()
    ctx.results["maskgan"] = {"parts_s": t, "infill_s": {str(n): {"in_process": acc[n, "local"], "two_actors": acc[n, "pool"]}
                                                         for n in s.maskgan_infills}}
    rows = [[f"in-fill {n} sequences", acc[n, "local"], acc[n, "pool"], acc[n, "local"] / acc[n, "pool"]]
            for n in s.maskgan_infills]
    table(f"maskgan: {MASKGAN_CONFIG.name} ({mc.num_layers} x {mc.hidden_dim} units, T={cfg.data.seq_len}, "
          f"V={cfg.data.vocab_size}): an iteration {t['d_steps'] + t['g_step']:.3g} s ({mc.d_steps} D steps "
          f"{t['d_steps']:.3g} s, G step {t['g_step']:.3g} s)",
          ["part", "in-process s", "2 actors s", "speed-up"], rows,
          [f"in-fills measured interleaved (ABBA, {s.maskgan_repeats} pair(s)); a G step fills {B} sequences, an "
           f"iteration's D steps {mc.d_steps} x {DB}, an evaluation train.eval_samples "
           f"({cfg.train.eval_samples}); broadcast of G to 2 actors: {t['broadcast']:.3g} s"])


def section_relgan(ctx: Context) -> None:
    """RelGAN's D step (configs/relgan_oracle.yaml: the RSGAN loss over a real batch and a batch
    of soft one-hots, Adam), interleaved ABBA: its convolutions computed both ways
    (`kernels.maxconv`), every product kept for the backward pass against rows in cache-sized
    blocks whose products the backward pass recomputes (what thin windows use on CPU), and
    the latter in bfloat16 (discriminator.precision) where this CPU has native bfloat16; at the
    paper's maps a window and the family tier's quarter."""
    from ..kernels import maxconv
    from ..losses import relaxed_discriminator_loss

    s = ctx.sizes
    out: dict[str, dict[str, float]] = {}
    rows = []
    precisions = PRECISIONS if bf16_supported() else ("float32",)
    for maps in s.relgan_maps:
        overrides = ["data.oracle_dir=", *s.relgan_overrides, "discriminator.filter_sizes=[2,3,4,5]",
                     f"discriminator.num_filters=[{','.join([str(maps)] * 4)}]"]
        cfgs = {p: load_config(RELGAN_CONFIG, [*overrides, f"discriminator.precision={p}"]) for p in precisions}
        dc, V, T = cfgs["float32"].discriminator, cfgs["float32"].data.vocab_size, cfgs["float32"].data.seq_len
        gen = torch.Generator().manual_seed(1)
        real = torch.randint(0, V, (dc.batch_size, T), generator=gen)
        fake = torch.softmax(3 * torch.randn(dc.batch_size, T, V, generator=gen), -1)

        def step_of(cfg: Config, *, thin: int = maxconv.THIN_WINDOW) -> Callable[[], None]:
            d = make_discriminator(cfg, 0)
            opt = torch.optim.Adam(d.parameters(), lr=dc.lr, fused=True)  # as DiscriminatorTrainer

            def step() -> None:
                saved, maxconv.THIN_WINDOW = maxconv.THIN_WINDOW, thin
                try:
                    loss = relaxed_discriminator_loss("rsgan", d.score(real, generator=gen), d.score(fake, generator=gen))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                finally:
                    maxconv.THIN_WINDOW = saved
            return step

        ctx.log(f"relgan: D step, {maps} maps a window, B = {dc.batch_size} + {dc.batch_size}, V = {V}")
        fns = {"kept": step_of(cfgs["float32"], thin=0), "blocked": step_of(cfgs["float32"])}
        if "bfloat16" in cfgs:
            fns["blocked_bf16"] = step_of(cfgs["bfloat16"])
        t = interleaved(fns, s.relgan_repeats)
        F_ = maps * len(dc.filter_sizes)
        highway = 2 * 3 * (2 * dc.batch_size * dc.num_rep) * F_ * 2 * F_  # forward and backward, both batches
        out[str(maps)] = {**t, "highway_gflop": highway / 1e9}
        rows.append([f"{maps} maps a window", t["kept"], t["blocked"], t["kept"] / t["blocked"],
                     t.get("blocked_bf16", ""), t["kept"] / t["blocked_bf16"] if "blocked_bf16" in t else "",
                     highway / 1e9])
    ctx.results["relgan"] = out
    table(f"relgan: a D step of {RELGAN_CONFIG.name} (num_rep {dc.num_rep}, windows {dc.filter_sizes}, "
          f"{torch.get_num_threads()} threads), seconds",
          ["D", "float32, products kept", "blocks recomputed", "speed-up", "the same in bfloat16", "speed-up",
           "highway GFLOP"], rows,
          [f"interleaved (ABBA, {s.relgan_repeats} pair(s)); the highway layer's (B·num_rep, F) x (F, 2F) "
           "products are the same in all" + ("" if "bfloat16" in precisions else "; no native bfloat16 here")])


def section_batched(ctx: Context) -> None:
    """K seeds of the paper's models (G 32/32, its D) stacked into one model (seqgan_ray.batched)
    against the same K runs stepped one after another, and one run alone: an MLE step, an Eq. 8
    step (the G step of an iteration) and a D step, B = 64 each, interleaved round-robin. On
    this device: the GPU when there is one, where the stacked step should cost about one run's."""
    from .. import batched
    from ..losses import discriminator_loss, policy_gradient_loss
    from ..roles import clip_gradients, mle_step

    s, K = ctx.sizes, ctx.sizes.batched_k
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = load_config(PAPER_CONFIG, ["data.oracle_dir=", *s.batched_overrides])
    g, dc, V, T = cfg.generator, cfg.discriminator, cfg.data.vocab_size, cfg.data.seq_len
    gens = [make_generator(cfg, seed).to(device) for seed in range(K)]
    discs = [make_discriminator(cfg, seed).to(device).train() for seed in range(K)]
    stacked_g, stacked_d = batched.StackedLSTMPolicy(gens).to(device), batched.StackedDiscriminator(discs).to(device)
    g_opts = [torch.optim.Adam(m.parameters(), lr=g.lr, fused=True) for m in gens]
    d_opts = [torch.optim.Adam(m.parameters(), lr=dc.lr, fused=True) for m in discs]
    stacked_g_opt = batched.StackedAdam(list(stacked_g.parameters()), [g.lr] * K)
    stacked_d_opt = batched.StackedAdam(list(stacked_d.parameters()), [dc.lr] * K)
    rng = torch.Generator().manual_seed(0)
    seqs = torch.randint(0, V, (K, g.batch_size, T), generator=rng).to(device)
    rewards = torch.rand(K, g.batch_size, T, generator=rng).to(device)
    x = torch.randint(0, V, (K, dc.batch_size, T), generator=rng).to(device)
    y = torch.randint(0, 2, (K, dc.batch_size), generator=rng).to(device)
    drop = [torch.Generator(device).manual_seed(k) for k in range(K)]

    def pg(k: int) -> None:
        g_opts[k].zero_grad(set_to_none=True)
        policy_gradient_loss(gens[k].log_probs(seqs[k]), rewards[k]).backward()
        clip_gradients(gens[k], g.grad_clip)
        g_opts[k].step()

    def d_step(k: int) -> None:
        d = discs[k]
        d_opts[k].zero_grad(set_to_none=True)
        discriminator_loss(d(x[k], generator=drop[k]), y[k], d.out.weight, d.out.bias, dc.l2_reg).backward()
        d_opts[k].step()

    def synced(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
        return run

    steps = {
        "MLE step": (lambda k: mle_step(gens[k], g_opts[k], seqs[k], g.grad_clip),
                     lambda: batched.mle_step(stacked_g, stacked_g_opt, seqs, g.grad_clip)),
        "Eq. 8 step": (pg, lambda: batched.policy_gradient_step(stacked_g, stacked_g_opt, seqs, rewards, g.grad_clip)),
        "D step": (d_step, lambda: batched.discriminator_step(stacked_d, stacked_d_opt, x, y, dc.l2_reg, drop)),
    }
    # a whole iteration: the G step (samples, Eq. 4 rewards by β and D, Eq. 8) and one round of D
    icfg = load_config(PAPER_CONFIG, ["data.oracle_dir=", *s.batched_overrides, "train.d_steps=1",
                                      "train.k_epochs=1", f"train.num_negatives={s.batched_negatives}"])
    real = torch.randint(0, V, (K, s.batched_negatives, T), generator=rng).to(device)
    runs = [(GeneratorLearner(icfg, k), DiscriminatorTrainer(icfg, k), RolloutWorker(icfg, 50 + k)) for k in range(K)]
    for learner, _, _ in runs:
        learner.sync_rollout_policy()
    stacked_it = batched.StackedSeqGAN(icfg, [r[0] for r in runs], [r[1] for r in runs],
                                       [torch.Generator(device).manual_seed(50 + k) for k in range(K)])

    def iteration(k: int) -> None:
        learner, disc, worker = runs[k]
        worker.set_weights(learner.rollout_weights(), disc.weights())
        seqs = learner.sample(icfg.generator.batch_size)
        learner.pg_step(seqs, worker.rewards(seqs))
        learner.update_rollout_policy()
        disc.train(learner.sample(icfg.train.num_negatives), 1, real=real[k])

    steps["iteration (G step, a D round)"] = (iteration, lambda: stacked_it.iteration(real))
    out, rows = {}, []
    for name, (one, stacked) in steps.items():
        ctx.log(f"batched: {name}, {K} seeds, on {device.type}")
        t = interleaved({"one run": synced(lambda: one(0)),
                         "separate": synced(lambda: [one(k) for k in range(K)]),
                         "stacked": synced(stacked)}, s.batched_repeats if "iteration" not in name else 2)
        out[name] = t
        rows.append([name, t["one run"], t["separate"], t["stacked"], t["separate"] / t["stacked"],
                     t["stacked"] / t["one run"]])
    ctx.results["batched"] = {"K": K, "device": device.type, **out}
    table(f"batched: {K} seeds of {PAPER_CONFIG.name}'s models (V = {V}, G {g.emb_dim}/{g.hidden_dim}, "
          f"D {discs[0].feature_dim} maps; B = {g.batch_size}), seconds a step, {device.type}, "
          f"{torch.get_num_threads()} threads",
          ["step", "one run", f"{K} runs one after another", f"{K} stacked", "speed-up", "stacked / one run"], rows,
          [f"interleaved round-robin, median of {s.batched_repeats} (the iteration: of 2); stacked = seqgan_ray.batched (bmm over the "
           "seeds, one Adam); the separate runs use the training code's own kernels (the roles, in-process); "
           f"the iteration: B = {icfg.generator.batch_size}, N = {icfg.rollout.num_rollouts}, one D epoch over "
           f"{s.batched_negatives} + {s.batched_negatives}"])


# --------------------------------------------------------------------------- 7. GPU

def section_gpu(ctx: Context) -> None:
    """On a GPU: the paper's D epoch with each step eager and replayed from a CUDA graph
    (interleaved), the graph's parity with the eager step, an MLE epoch and a rewards batch."""
    if not torch.cuda.is_available():
        print("\ngpu: skipped, torch sees no GPU")
        return
    s, cfgs = ctx.sizes, {p: ctx.paper_config(p) for p in PRECISIONS}
    tc = cfgs["float32"].train
    real = seeded_oracle(cfgs["float32"].data).sample(cfgs["float32"].data.num_train,
                                                       generator=torch.Generator().manual_seed(1))
    fake = real[torch.randperm(len(real), generator=torch.Generator().manual_seed(2))][:tc.num_negatives]

    def graphs(cfg: Config, on: bool) -> Config:
        cfg = copy.deepcopy(cfg)
        cfg.train.cuda_graphs = on
        return cfg

    def trainer(cfg: Config, graph: bool, dropout: float | None = None) -> DiscriminatorTrainer:
        cfg = graphs(cfg, graph)
        if dropout is not None:
            cfg.discriminator.dropout = dropout
        t = DiscriminatorTrainer(cfg, 10)
        t.set_data(real)
        return t

    ctx.log("gpu: parity of the graphed D step with the eager one (dropout 0, one epoch)")
    a, b = trainer(cfgs["float32"], False, 0.0), trainer(cfgs["float32"], True, 0.0)
    sa, sb = a.train(fake, 1), b.train(fake, 1)
    pa, pb = torch.cat([p.flatten() for p in a.discriminator.parameters()]), \
        torch.cat([p.flatten() for p in b.discriminator.parameters()])
    parity = {"rel_err": ((pa - pb).norm() / pa.norm()).item(), "loss_eager": sa.loss, "loss_graph": sb.loss,
              "replaying": b.graphed is not None and b.graphed.replaying}
    rows, out = [], {"parity": parity}
    for p, cfg in cfgs.items():
        ctx.log(f"gpu: one D epoch ({len(real)} real + {len(fake)} fake), eager vs CUDA graph, {p}")
        eager, graph = trainer(cfg, False), trainer(cfg, True)
        graph.train(fake[:64 * 8], 1)  # warm-up steps and the recording
        t = interleaved({"eager": lambda: eager.train(fake, 1), "graph": lambda: graph.train(fake, 1)}, s.repeats)
        out[p] = {**t, "replaying": graph.graphed is not None and graph.graphed.replaying}
        rows.append([f"D epoch, {p}", t["eager"], t["graph"], t["eager"] / t["graph"]])
    ctx.log("gpu: an MLE epoch and a rewards batch")
    learner, eager_learner = (GeneratorLearner(graphs(cfgs["float32"], on), 0) for on in (True, False))
    learner.set_data(real)
    eager_learner.set_data(real)
    out["mle_epoch"] = interleaved({"eager": eager_learner.pretrain_epoch, "graph": learner.pretrain_epoch}, s.repeats)
    cfg = cfgs["float32"]
    worker_seqs = learner.sample(cfg.generator.batch_size)
    w = RolloutWorker(cfg, 0)
    w.set_weights(learner.rollout_weights(), DiscriminatorTrainer(cfg, 10).weights())
    w.rewards(worker_seqs)
    out["rewards"] = statistics.median(clock(lambda: w.rewards(worker_seqs)) for _ in range(s.repeats))
    m = out["mle_epoch"]
    rows += [["MLE epoch", m["eager"], m["graph"], m["eager"] / m["graph"]],
             [f"rewards, B={cfg.generator.batch_size}, N={cfg.rollout.num_rollouts}", out["rewards"], "", ""]]
    ctx.results["gpu"] = out
    table(f"gpu: {torch.cuda.get_device_name(0)} (seconds)", ["part", "eager", "CUDA graph", "speed-up"], rows,
          [f"graph parity (dropout 0, 1 epoch): parameters' relative difference {parity['rel_err']:.1e}, "
           f"mean loss {parity['loss_eager']:.4f} eager vs {parity['loss_graph']:.4f} graphed; "
           f"replaying: {parity['replaying']}"])


# --------------------------------------------------------------------------- main

RUNNERS: dict[str, Callable[[Context], None]] = {"rewards": section_rewards, "flops": section_flops,
                                                 "iteration": section_iteration, "pool": section_pool,
                                                 "scaling": section_scaling, "stride": section_stride,
                                                 "leakgan": section_leakgan, "maskgan": section_maskgan,
                                                 "relgan": section_relgan, "batched": section_batched,
                                                 "gpu": section_gpu}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m seqgan_ray.experiments.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated, any of {','.join(SECTIONS)} (default: all)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test in well under a minute")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of this process (default 2)")
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = ap.parse_args(argv)
    args.sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    bad = [x for x in args.sections if x not in SECTIONS]
    if bad:
        ap.error(f"unknown section {bad[0]!r}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    ctx = Context(QUICK if args.quick else FULL)
    header(ctx)
    for name in args.sections:
        RUNNERS[name](ctx)
    wall = time.perf_counter() - ctx.started
    share = (time.process_time() - ctx.cpu_started) / wall / torch.get_num_threads()
    ctx.results["header"].update(wall_s=round(wall, 1), cpu_share=round(share, 2))
    # Below ~0.9 another job took part of the cores: absolute times are longer than on a quiet
    # machine (Ray actors' CPU time is not counted here, so the pool section lowers it too).
    print(f"\nwall time {wall:.0f} s; this process used {share:.0%} of {torch.get_num_threads()} threads' time; "
          f"CPUs {cpu_busy():.0%} busy right after")
    ctx.log(f"done: {', '.join(args.sections)}")
    if args.json:
        args.json.write_text(json.dumps(ctx.results, indent=2) + "\n")
    return ctx.results


if __name__ == "__main__":
    main()
