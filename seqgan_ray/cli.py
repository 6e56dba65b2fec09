"""Command line: `python run.py [--config FILE] [--cluster FILE] [--resume RUN] [key=value ...]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .checkpoint import CheckpointError
from .config import ConfigError, all_keys, load_config
from .data import DataError
from .distributed.cluster import ClusterError

DEFAULT_CLUSTER = Path(__file__).resolve().parent.parent / "clusters" / "local.yaml"
ROLE_RETRIES = 2  # restarts from the last checkpoint when the learner or discriminator actor dies


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py",
        description="Train SeqGAN (Yu et al., AAAI 2017) on Ray: rollout actors compute Monte Carlo "
                    "rewards with the delayed policy, a learner actor updates the generator, a "
                    "discriminator actor trains the CNN. With no arguments: a quick run of the "
                    "synthetic task on an embedded local Ray.",
        epilog="Overrides are section.key=value, e.g. rollout.num_rollouts=8 train.adv_iterations=50. "
               "Valid keys: " + ", ".join(all_keys()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--config", type=Path, help="YAML config (e.g. configs/paper_synthetic.yaml); "
                                               "defaults to the quick laptop run")
    p.add_argument("--cluster", type=Path, default=None,
                   help="ray up cluster file (default clusters/local.yaml: embedded Ray)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its newest checkpoint, with its config.yaml "
                        "(overrides still apply, e.g. a longer train.adv_iterations)")
    p.add_argument("--no-ray", action="store_true",
                   help="run every role in this process, without Ray (deterministic; for debugging)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def build_tune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py tune",
        description="Sweep hyperparameters with Ray Tune: each trial trains SeqGAN on its own actors "
                    "and reports the metric after every adversarial iteration. The sweep file is a "
                    "config plus a 'tune:' section (see configs/tune_oracle.yaml and docs/tuning.md).")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the base config")
    p.add_argument("--config", type=Path, help="sweep file, e.g. configs/tune_oracle.yaml")
    p.add_argument("--cluster", type=Path, default=None, help="ray up cluster file (default clusters/local.yaml)")
    p.add_argument("--resume", type=Path, metavar="SWEEP_DIR", help="continue an interrupted sweep")
    return p


def main(argv: list[str] | None = None) -> int:
    from .train import Interrupted, NumericalError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["tune"]:
        args, command = build_tune_parser().parse_args(argv[1:]), _tune
    else:
        args, command = build_parser().parse_args(argv), _train
    try:
        return command(args, argv)
    except (ConfigError, DataError, ClusterError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NumericalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except Interrupted as exc:
        print(f"{exc}; resume with: python run.py --resume {args.run_dir}", file=sys.stderr)
        return 130


def _tune(args: argparse.Namespace, argv: list[str]) -> int:
    from .distributed.cluster import connect, load_cluster
    from .sweep import load_sweep, load_sweep_setup, run_sweep

    if args.resume:
        base, sweep = load_sweep_setup(args.resume)
    elif args.config is None:
        raise ConfigError("run.py tune needs --config SWEEP_FILE (e.g. configs/tune_oracle.yaml) or --resume DIR")
    else:
        base, sweep = load_sweep(args.config, args.overrides)
    spec = load_cluster(args.cluster or DEFAULT_CLUSTER)
    connect(spec, argv)
    sweep_dir, unfinished = run_sweep(base, sweep, spec, resume_dir=args.resume)
    print(f"sweep folder: {sweep_dir}", file=sys.stderr)
    return 130 if unfinished else 0


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    from .oracle import load_task
    from .train import local_roles, ray_roles, train, train_with_recovery

    if args.resume:
        if args.config:
            raise ConfigError("--resume uses the run's own config.yaml; drop --config")
        if not (args.resume / "config.yaml").is_file():
            raise CheckpointError(f"{args.resume}: not a run folder (no config.yaml)")
        cfg = load_config(args.resume / "config.yaml", args.overrides)
        run_dir = args.resume
    else:
        cfg = load_config(args.config, args.overrides)
        run_dir = Path(cfg.run.out_dir) / (cfg.run.name or time.strftime("%Y%m%d-%H%M%S"))
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(f"run folder {run_dir} already exists; set run.name to another name "
                              f"or continue it with --resume {run_dir}")
    args.run_dir = run_dir
    if args.quiet:
        cfg.run.progress = False

    spec = None
    if not args.no_ray:
        from .distributed.cluster import connect, load_cluster

        spec = load_cluster(args.cluster or DEFAULT_CLUSTER)
        connect(spec, argv)

    task = load_task(cfg.data)
    print(f"data: {task.source}", file=sys.stderr)
    if spec is None:
        print("roles: in-process (no Ray)", file=sys.stderr)
        roles = local_roles(cfg)
        try:
            result = train(cfg, task, roles, run_dir, resume=bool(args.resume))
        finally:
            roles.shutdown()
    else:
        import ray

        size = spec.pool_size(ray.cluster_resources())
        print(f"roles: Ray ({spec.path.name}): learner, discriminator and {size} rollout actors "
              f"on {len(ray.nodes())} node(s)", file=sys.stderr)
        result = train_with_recovery(cfg, task, lambda: ray_roles(cfg, spec, size), run_dir,
                                     resume=bool(args.resume), retries=ROLE_RETRIES)
    s = result.summary
    f = lambda v: "n/a" if v is None else f"{v:.3f}"
    print(f"run folder: {run_dir}\n"
          f"NLL-oracle: random {f(s['oracle_nll_random'])}, after pretraining "
          f"{f(s['oracle_nll_after_pretraining'])}, after adversarial {f(s['oracle_nll_after_adversarial'])} "
          f"(training data {f(s['oracle_nll_of_training_data'])}); wall time {s['wall_time_s']:.0f} s")
    return 0
