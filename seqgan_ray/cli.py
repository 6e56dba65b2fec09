"""Command line: `python run.py [--config FILE] [--cluster FILE] [key=value ...]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .config import ConfigError, all_keys, load_config
from .data import DataError
from .distributed.cluster import ClusterError

DEFAULT_CLUSTER = Path(__file__).resolve().parent.parent / "clusters" / "local.yaml"


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
    p.add_argument("--no-ray", action="store_true",
                   help="run every role in this process, without Ray (deterministic; for debugging)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return _train(args, argv)
    except (ConfigError, DataError, ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    import torch

    from .oracle import load_task
    from .train import local_roles, ray_roles, train

    cfg = load_config(args.config, args.overrides)
    if args.quiet:
        cfg.run.progress = False
    name = cfg.run.name or time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(cfg.run.out_dir) / name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"run folder {run_dir} already exists; set run.name to another name")

    spec = None
    if not args.no_ray:
        from .distributed.cluster import connect, load_cluster

        spec = load_cluster(args.cluster or DEFAULT_CLUSTER)
        connect(spec, [a if a != str(args.cluster) else str(spec.path) for a in argv])

    task = load_task(cfg.data)
    print(f"data: {task.source}", file=sys.stderr)
    torch.manual_seed(cfg.run.seed)
    if spec is None:
        roles = local_roles(cfg)
        print("roles: in-process (no Ray)", file=sys.stderr)
    else:
        import ray

        size = spec.pool_size(ray.cluster_resources())
        roles = ray_roles(cfg, spec, size)
        print(f"roles: Ray ({spec.path.name}): learner, discriminator and {size} rollout actors "
              f"on {len(ray.nodes())} node(s)", file=sys.stderr)
    try:
        result = train(cfg, task, roles, run_dir)
    finally:
        roles.shutdown()
    s = result.summary
    print(f"run folder: {run_dir}\n"
          f"NLL-oracle: random {s['oracle_nll_random']:.3f}, after pretraining "
          f"{s['oracle_nll_after_pretraining']:.3f}, after adversarial "
          f"{s['oracle_nll_after_adversarial'] or float('nan'):.3f} "
          f"(training data {s['oracle_nll_of_training_data']:.3f}); wall time {s['wall_time_s']:.0f} s")
    return 0
