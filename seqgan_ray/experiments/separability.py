"""How far apart a trained generator and the oracle are, and what each learned of the
training set: the ceiling for any discriminator on the synthetic task.

    python -m seqgan_ray.experiments.separability runs/reproduce_family/seed0/pretrain
    python -m seqgan_ray.experiments.separability RUN --checkpoint RUN/checkpoints/pretrain_g_000120.pt
    python -m seqgan_ray.experiments.separability RUN --train-d 50 [--paper-d]   # and a fresh D's learning
    python -m seqgan_ray.experiments.separability RUN --checkpoint CKPT --more-d 150  # the run's D, longer

With the oracle at hand, the best possible discriminator is the likelihood ratio: call a
sequence real when the oracle gives it more probability than G does. Its accuracy on fresh
oracle samples against fresh G samples is the most any D can score on the "D learns" check;
a trained D far below it has not learned the oracle, however well it tells its own training
sequences from G's. Beside it, each model's per-token NLL of the training sequences, of fresh
oracle samples and of G's samples: G's NLL of the training sequences far below that of fresh
ones means G learned those sequences, not the oracle.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from ..checkpoint import CheckpointError
from ..config import Config, ConfigError
from ..models.discriminator import paper_filters
from ..models.policy import LSTMPolicy
from ..tasks import SyntheticTask
from ..tasks.synthetic import load_task
from ..tasks.token_file import DataError
from .frontier import load_run


@dataclass(frozen=True)
class Separability:
    """Per-token NLLs (nats) and likelihood-ratio accuracies of one generator against the oracle."""

    oracle_nll: dict[str, float]      # the oracle's NLL of "training", "fresh" (oracle) and "generated"
    generator_nll: dict[str, float]   # G's NLL of the same three sets
    bayes_fresh: float                # the likelihood ratio's accuracy, fresh oracle vs G samples
    bayes_training: float             # the same with the training sequences as the real side
    samples: int


def ratio_accuracy(oracle: LSTMPolicy, generator: LSTMPolicy, real: Tensor, fake: Tensor) -> float:
    """Balanced accuracy of "real when log p_oracle(x) > log p_G(x)" on `real` and `fake` (S, T)."""
    def says_real(x: Tensor) -> Tensor:
        return oracle.sequence_nll(x) < generator.sequence_nll(x)
    return 0.5 * (says_real(real).double().mean().item() + (~says_real(fake)).double().mean().item())


def separability(oracle: LSTMPolicy, generator: LSTMPolicy, training: Tensor, *, samples: int = 2000,
                 seed: int = 0) -> Separability:
    """`samples` fresh oracle samples, as many of G's and the first `samples` training sequences,
    each scored by both models; the likelihood ratio's accuracy on fresh and on training data."""
    fresh = oracle.sample(samples, generator=torch.Generator().manual_seed(seed))
    generated = generator.sample(samples, generator=torch.Generator().manual_seed(seed + 1))
    train = training[:samples]
    sets = {"training": train, "fresh": fresh, "generated": generated}
    return Separability(
        oracle_nll={k: oracle.sequence_nll(x).mean().item() for k, x in sets.items()},
        generator_nll={k: generator.sequence_nll(x).mean().item() for k, x in sets.items()},
        bayes_fresh=ratio_accuracy(oracle, generator, fresh, generated),
        bayes_training=ratio_accuracy(oracle, generator, train, generated),
        samples=samples)


def train_d(cfg: Config, oracle: LSTMPolicy, generator: LSTMPolicy, training: Tensor, rounds: int, *,
            samples: int = 2000, every: int = 5, seed: int = 0) -> Iterator[dict[str, float]]:
    """A fresh D of `cfg` trained as the pretraining trains one (each round train.num_negatives
    fresh samples of `generator` against as many training sequences, train.pretrain_d_epochs
    epochs), against a fixed G: after round 1 and every `every` rounds, its accuracy on fresh
    oracle samples and on training sequences, each against the same fresh G samples."""
    from ..roles import DiscriminatorTrainer

    trainer = DiscriminatorTrainer(cfg, seed)
    rng, held = torch.Generator().manual_seed(seed + 2), torch.Generator().manual_seed(seed + 3)
    fresh, fake = oracle.sample(samples, generator=held), generator.sample(samples, generator=held)
    train = training[torch.randperm(len(training), generator=held)[:samples]]
    n = cfg.train.num_negatives
    for r in range(1, rounds + 1):
        real = training[torch.randperm(len(training), generator=rng)[:n]]
        trainer.train(generator.sample(n, generator=rng), cfg.train.pretrain_d_epochs, real)
        if r == 1 or r % every == 0 or r == rounds:
            yield {"round": r, "heldout": trainer.heldout_accuracy(fresh, fake),
                   "trainset": trainer.heldout_accuracy(train, fake)}


def more_d(run_dir: Path, checkpoint: Path, rounds: int, *, samples: int = 2000, every: int = 10,
           seed: int = 0) -> Iterator[dict[str, float]]:
    """The run's own D, from its `checkpoint` (a whole checkpoint of the run), trained `rounds`
    more rounds exactly as its run trains one (Trainer.d_round: train.num_negatives fresh G
    samples, the run's real side, LeakGAN's fresh positives and leaked sampling included,
    train.pretrain_d_epochs epochs), G held where the checkpoint left it: D's accuracy on fresh
    oracle samples and on training sequences, each against the same fresh G samples, before
    the first round and every `every` rounds. Would more D training put D in its regime?
    Nothing is written to the run's folder."""
    import tempfile

    from ..config import load_config
    from ..trainer import Trainer, local_roles

    cfg = load_config(run_dir / "config.yaml", saved=True)
    cfg.run.progress = False
    task = load_task(cfg.data)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(cfg, task, local_roles(cfg), Path(scratch))
        trainer.load(checkpoint)
        held = torch.Generator().manual_seed(seed + 3)
        fresh = task.oracle.sample(samples, generator=held)
        fake = trainer.generator_samples(samples)
        train = task.real[torch.randperm(len(task.real), generator=held)[:samples]]
        for r in range(rounds + 1):
            if r:
                trainer.d_round(cfg.train.pretrain_d_epochs)
            if r % every == 0 or r == rounds:
                yield {"round": r, "heldout": trainer.disc.heldout_accuracy(fresh, fake),
                       "trainset": trainer.disc.heldout_accuracy(train, fake)}
        trainer.roles.shutdown()


def report(s: Separability, label: str) -> str:
    lines = [f"{label}: {s.samples} sequences of each kind",
             "",
             "| NLL per token of | training sequences | fresh oracle samples | G's samples |",
             "|---|---|---|---|",
             *(f"| {who} | {nll['training']:.3f} | {nll['fresh']:.3f} | {nll['generated']:.3f} |"
               for who, nll in (("the oracle", s.oracle_nll), ("G", s.generator_nll))),
             "",
             f"Likelihood ratio (the best possible D) against G's samples: accuracy {s.bayes_fresh:.3f} on "
             f"fresh oracle samples, {s.bayes_training:.3f} on the training sequences.",
             f"G's NLL of the training sequences is {s.generator_nll['fresh'] - s.generator_nll['training']:.2f} "
             "nats a token below that of fresh oracle samples (0 for a G that learned the oracle, not the set)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seqgan_ray.experiments.separability",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run folder of the synthetic task")
    ap.add_argument("--checkpoint", type=Path, help="a checkpoint of the run (default: its final generator)")
    ap.add_argument("--samples", type=int, default=2000, help="sequences of each kind (default 2000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fresh samples (default 0)")
    ap.add_argument("--train-d", type=int, default=0, metavar="ROUNDS",
                    help="also train a fresh D of the run's config against this G for ROUNDS rounds, as "
                         "the pretraining does, and print its accuracy on fresh oracle samples and on "
                         "training sequences every 5 rounds")
    ap.add_argument("--paper-d", action="store_true",
                    help="with --train-d: the paper's D (its window sizes and all their maps) instead of the run's")
    ap.add_argument("--more-d", type=int, default=0, metavar="ROUNDS",
                    help="also train the run's own D from --checkpoint (a whole checkpoint of the run) ROUNDS "
                         "more rounds as its run trains one, G fixed, and print its accuracy every 10 rounds")
    args = ap.parse_args(argv)
    if args.samples < 2:
        ap.error(f"--samples must be at least 2, got {args.samples}")
    if args.train_d < 0 or (args.paper_d and not args.train_d):
        ap.error("--train-d takes a number of rounds (1 or more); --paper-d goes with it")
    if args.more_d < 0 or (args.more_d and args.checkpoint is None):
        ap.error("--more-d takes a number of rounds (1 or more) and a --checkpoint of the run to go on from")
    try:
        cfg, generator = load_run(args.run, checkpoint=args.checkpoint)
        if cfg.data.corpus:
            raise ConfigError(f"{args.run}: a text run (data.corpus={cfg.data.corpus}); separability needs "
                              "the synthetic task's oracle")
        task = load_task(cfg.data)
    except (CheckpointError, ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    assert isinstance(task, SyntheticTask)
    print(report(separability(task.oracle, generator.eval(), task.real, samples=args.samples, seed=args.seed),
                 str(args.checkpoint or args.run)), flush=True)
    if args.train_d:
        if args.paper_d:
            cfg.discriminator.filter_sizes, cfg.discriminator.num_filters = paper_filters(cfg.data.seq_len)
        dc = cfg.discriminator
        print(f"\nA fresh D ({sum(dc.num_filters)} maps, windows {dc.filter_sizes}), {cfg.train.pretrain_d_epochs} "
              f"epochs a round over {cfg.train.num_negatives} G samples and as many training sequences:\n\n"
              "| round | accuracy: fresh oracle samples | training sequences |\n|---|---|---|", flush=True)
        for rec in train_d(cfg, task.oracle, generator, task.real, args.train_d, samples=args.samples, seed=args.seed):
            print(f"| {rec['round']} | {rec['heldout']:.3f} | {rec['trainset']:.3f} |", flush=True)
    if args.more_d:
        print(f"\nThe run's own D from {args.checkpoint}, {args.more_d} more rounds as its run trains one, G fixed:"
              "\n\n| more rounds | accuracy: fresh oracle samples | training sequences |\n|---|---|---|", flush=True)
        try:
            for rec in more_d(args.run, args.checkpoint, args.more_d, samples=args.samples, seed=args.seed):
                print(f"| {rec['round']} | {rec['heldout']:.3f} | {rec['trainset']:.3f} |", flush=True)
        except CheckpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
