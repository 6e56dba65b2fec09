"""Command line: `python run.py [--config FILE] [--cluster FILE] [--resume RUN] [key=value ...]`."""

from __future__ import annotations

import argparse
import shlex
import sys
import textwrap
import time
from pathlib import Path

from .checkpoint import CheckpointError, latest_checkpoint
from .config import ConfigError, all_keys, check_folder, load_config, unread_keys
from .distributed.cluster import ClusterError
from .tasks.token_file import DataError

DEFAULT_CLUSTER = Path(__file__).resolve().parent.parent / "clusters" / "local.yaml"
SAMPLE_BLOCK = 64  # `sample` draws whole blocks of this many sequences
ROLE_RETRIES = 2  # restarts from the last checkpoint when the learner or discriminator actor dies
COMMANDS = {  # what `python run.py --help` lists, one line each; `main` dispatches on the name
    "train": "train SeqGAN, or the algorithm train.method names: the default command",
    "tune": "sweep hyperparameters with Ray Tune: a config plus a tune: section",
    "prepare": "turn your own text into a vocabulary and Parquet shards of token ids",
    "sample": "print sequences sampled from a run's generator",
    "reproduce": "a paper's table (SeqGAN's Table 1 by default): every run, then the report",
    "evaluate": "a run's quality-diversity frontier over sampling temperatures",
}


def build_parser() -> argparse.ArgumentParser:
    about = textwrap.fill(
        "Train SeqGAN (Yu et al., AAAI 2017) on Ray: rollout actors compute Monte Carlo rewards with "
        "the delayed policy, a learner actor updates the generator, a discriminator actor trains "
        "the CNN. train.method picks the algorithm: seqgan, its MLE baselines (mle, scheduled_sampling), "
        "the relaxed GANs relgan, gsgan and textgan (docs/relaxed.md), leakgan (docs/leakgan.md), or maskgan (docs/maskgan.md). "
        "With no arguments: a quick run of the "
        "synthetic task on an embedded local Ray.", 79)
    commands = "\n".join(f"  {name:<10} {line}" for name, line in COMMANDS.items())
    p = argparse.ArgumentParser(
        prog="run.py",
        description=f"{about}\n\ncommands (python run.py COMMAND --help for each):\n{commands}",
        epilog=textwrap.fill("Overrides are section.key=value, anywhere on the line, e.g. "
                             "rollout.num_rollouts=8 train.adv_iterations=50. A method brings its own "
                             "models and settings for the keys you do not set (the run's first lines "
                             "name them). --print-config prints every key's value without training; "
                             "docs/configuration.md explains each. Valid keys: " + ", ".join(all_keys()), 79),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--config", type=Path, help="YAML config (e.g. configs/paper_synthetic.yaml); "
                                               "defaults to the quick laptop run")
    p.add_argument("--cluster", type=Path, default=None,
                   help="ray up cluster file (default clusters/local.yaml: embedded Ray)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its newest checkpoint, with its config.yaml "
                        "(overrides still apply, e.g. a longer train.adv_iterations; not another "
                        "train.method: see --from)")
    p.add_argument("--from", dest="start_from", type=Path, metavar="CHECKPOINT",
                   help="start a new run from another run's checkpoint file (its models, optimizers and "
                        "place in the schedule), e.g. to go on from an MLE run's pretraining as another "
                        "train.method: --from runs/mle/checkpoints/pretrain_d_000003.pt train.method=seqgan")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (defaults, --config, overrides, the method's own "
                        "settings) as YAML and exit without training")
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


def build_prepare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py prepare",
        description="Turn your own text (whitespace-tokenized, one sentence a line, UTF-8) into a "
                    "vocabulary and Parquet shards of token ids for training. Streams the text "
                    "twice (count words and find the longest line, then write), so a corpus "
                    "larger than memory works. Writes into a temporary folder renamed into place "
                    "at the end: on an error nothing is written. See docs/text.md.",
        epilog="Writes OUT/vocab.txt (line number = id; 0..3 are <pad> <bos> <eos> <unk>), "
               "OUT/train/part-*.parquet and OUT/test/part-*.parquet (columns tokens: the word "
               "ids then <eos>, unpadded; length) and OUT/metadata.json.")
    p.add_argument("--input", type=Path, nargs="+", required=True, metavar="PATH",
                   help="training text: files, or folders whose .txt files are read (sorted)")
    p.add_argument("--out", type=Path, required=True, help="output folder (e.g. data/my_corpus)")
    held = p.add_mutually_exclusive_group()
    held.add_argument("--test", type=Path, metavar="PATH",
                      help="held-out text (file or folder); the vocabulary comes from --input only, "
                           "its unknown words become <unk>")
    held.add_argument("--test-fraction", type=float, metavar="F",
                      help="carve this fraction (0 < F < 1) of the --input lines off as the test "
                           "split, chosen per line by a seeded hash (duplicates stay together)")
    p.add_argument("--seed", type=int, default=0, help="seed of --test-fraction's choice (default 0)")
    p.add_argument("--min-count", type=int, default=1, metavar="N",
                   help="words seen fewer than N times in training lines become <unk> (default 1)")
    p.add_argument("--max-vocab", type=int, default=None, metavar="N",
                   help="keep at most the N most frequent words (besides the 4 specials); the rest "
                        "become <unk> (default: every word seen --min-count times)")
    p.add_argument("--split-punctuation", action="store_true",
                   help="make each punctuation mark a word of its own (\"it's fine.\" -> it's fine .); "
                        "default: split on whitespace only, as the benchmarks' files are")
    p.add_argument("--vocab-from-test", action="store_true",
                   help="build the vocabulary from the test text too, as Texygen does for COCO: no "
                        "<unk> in the test split, so NLL-test is comparable with Texygen's")
    p.add_argument("--no-lowercase", dest="lowercase", action="store_false",
                   help="keep case (default: lowercase everything)")
    p.add_argument("--max-len", type=int, default=None, metavar="T",
                   help="T, the sequence length the model uses: a sentence of L words needs "
                        "L + 1 <= T (its <eos>). Default: what the corpus needs, the longest "
                        "--input line + 1 (with --test-fraction, the carved test lines included), "
                        "so no position is always empty and no training line is dropped")
    p.add_argument("--long", choices=("drop", "truncate"), default="drop",
                   help="sentences longer than T - 1 words (with the default T, only --test lines "
                        "can be): drop and count them (default), or keep their first T - 1 words")
    p.add_argument("--shard-rows", type=int, default=100_000, metavar="N",
                   help="sentences per Parquet shard (default 100000)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists and is not empty")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def build_reproduce_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py reproduce",
        description="Reproduce a paper's table (by default SeqGAN's synthetic experiment, Table 1 and "
                    "Figure 2): pretrain once per seed, then train every run of the reproduce file "
                    "(MLE, scheduled sampling, PG-BLEU, SeqGAN, ...) from that checkpoint, runs of "
                    "other models (reproduce.standalone) from scratch, and write the report: "
                    "NLL-oracle beside the paper's on the synthetic task, BLEU and Self-BLEU beside the "
                    "published ones on a corpus. Resumable: finished runs are skipped, interrupted ones "
                    "continue from their checkpoints.",
        epilog="The file is a config plus a 'reproduce:' section; see configs/reproduce_synthetic.yaml "
               "(docs/results/synthetic.md), reproduce_leakgan.yaml, reproduce_relaxed.yaml and "
               "reproduce_relaxed_coco.yaml.")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="overrides of the shared config (generator.shuffle=false) or of the "
                        "reproduce section (reproduce.out_dir=runs/other)")
    p.add_argument("--config", type=Path, default=Path("configs/reproduce_synthetic.yaml"),
                   help="reproduce file (default configs/reproduce_synthetic.yaml)")
    p.add_argument("--cluster", type=Path, default=None, help="ray up cluster file (default clusters/local.yaml)")
    p.add_argument("--no-ray", action="store_true", help="every role in this process, without Ray")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: rewrite the report from the runs on disk")
    p.add_argument("--runs", metavar="NAME[,NAME]", default=None,
                   help="train only these runs of the file now (and the pretraining they start "
                        "from), in the file's order; the report still covers every run")
    p.add_argument("--seeds", metavar="K[,K]", default=None,
                   help="train only these seeds of the file now (default: every seed)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="train up to N side by side: each seed's pretraining and runs, each in "
                        "its own process with its share of the cores and its own log "
                        "(<out_dir>/seed<k>/<run>.log, pretrain.log), a run as soon as what it "
                        "starts from has finished; needs --no-ray (e.g. one GPU machine, every "
                        "role of every run on the GPU). Default 1: one after another")
    p.add_argument("--stack-seeds", action="store_true",
                   help="train the seeds of each SeqGAN run as one stacked model in this process "
                        "(after every seed's pretraining), for a GPU, where K seeds should cost "
                        "about one run (not yet timed); the results are the runs' apart, up to "
                        "float32 rounding. Runs that cannot stack train apart, with the reason; "
                        "needs --no-ray. With --jobs, a stacked run is one job")
    p.add_argument("--pretrain-only", action="store_true",
                   help="train only the seeds' shared pretraining (what the runs, or those of "
                        "--runs, start from), none of the runs")
    p.add_argument("--no-report", action="store_true", help="train, but do not write the report")
    p.add_argument("--background", action="store_true",
                   help="run detached from this terminal, output to <out_dir>/reproduce.log; start "
                        "the same command again to continue it after a stop")
    return p


def build_sample_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py sample",
        description="Print sequences sampled from a run's generator (its generator.pt, or its newest "
                    "checkpoint while it has none): "
                    "decoded sentences for a text run, token ids for the synthetic task.")
    p.add_argument("--run", type=Path, required=True, metavar="RUN_DIR", help="a run folder, e.g. runs/coco")
    p.add_argument("--num", type=int, default=20, help="how many (default 20)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="softmax temperature: < 1 sharper, > 1 more diverse (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--checkpoint", type=Path, help="a checkpoint file of the run, or a generator state dict "
                                                 "(default: generator.pt, else the newest checkpoint)")
    return p


def build_evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py evaluate",
        description="The quality-diversity frontier of trained generators: sample each run's "
                    "generator at every temperature and score the samples as training does. "
                    "Synthetic task: NLL-oracle (quality) with its 95% half-width, and NLL-test "
                    "(coverage) under the same tempered softmax; text: BLEU-2..5, Self-BLEU-2..5 "
                    "and NLL-test. Put MLE's and SeqGAN's side by side to see whether adversarial "
                    "training buys more than a lower temperature (Caccia et al. 2020).",
        epilog="Prints the table and writes RUN/frontier.csv, RUN/frontier.md and RUN/frontier.png "
               "(NLL-test against NLL-oracle; Self-BLEU-5 against BLEU-5 for text), and the runs "
               "together into --out DIR. Reads RUN/generator.pt, or the newest checkpoint if the "
               "run has not finished.")
    p.add_argument("--run", type=Path, nargs="+", action="extend", required=True, metavar="RUN_DIR",
                   help="run folders, e.g. runs/reproduce/seed0/mle runs/reproduce/seed0/seqgan")
    p.add_argument("--temperatures", default="0.7,0.8,...,1.3", metavar="T[,T]",
                   help="sampling temperatures, the same for every run: a list (0.8,1,1.2) or a "
                        "range (0.7,0.8,...,1.3, the default)")
    p.add_argument("--num", type=int, default=None,
                   help="samples per temperature (default: the run's train.eval_samples)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed, the same at every temperature (default 0)")
    p.add_argument("--checkpoint", type=Path, metavar="FILE",
                   help="read the (single) run's generator from FILE instead: a checkpoint of the run, "
                        "or a generator state dict like generator.pt")
    p.add_argument("--out", type=Path, metavar="DIR", help="also write the runs' combined table and plot here")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    from .trainer import Interrupted, NumericalError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # the default command, also by name
        argv = argv[1:]
    argv = _attach_negative_values(argv)
    if argv[:1] == ["tune"]:
        args, command = build_tune_parser().parse_intermixed_args(argv[1:]), _tune
    elif argv[:1] == ["sample"]:
        args, command = build_sample_parser().parse_args(argv[1:]), _sample
    elif argv[:1] == ["reproduce"]:
        args, command = build_reproduce_parser().parse_intermixed_args(argv[1:]), _reproduce
    elif argv[:1] == ["prepare"]:
        args, command = build_prepare_parser().parse_args(argv[1:]), _prepare
    elif argv[:1] == ["evaluate"]:
        args, command = build_evaluate_parser().parse_args(argv[1:]), _evaluate
    else:
        args, command = build_parser().parse_intermixed_args(argv), _train
    try:
        return command(args, argv)
    except (ConfigError, DataError, ClusterError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NumericalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except Interrupted as exc:
        # a reproduce command resumes by running again as it was given (its overrides, --runs)
        again = ("python run.py " + shlex.join(a for a in argv if a != "--background") if command is _reproduce
                 else f"python run.py --resume {args.run_dir}")
        print(f"{exc}; resume with: {again}", file=sys.stderr)
        return 130


VALUE_OPTIONS = ("--temperatures", "--temperature", "--num", "--seed", "--test-fraction", "--min-count",
                 "--max-len", "--jobs")  # options whose value may start with '-'


def _attach_negative_values(argv: list[str]) -> list[str]:
    """`--temperatures -0.5,1` as `--temperatures=-0.5,1`: argparse takes a value that starts with
    '-' (and is no plain number) for an option, and says only "expected one argument"; attached,
    the value reaches the command's own check, which names the option and what it takes."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in VALUE_OPTIONS and arg.startswith("-") and arg[1:2] in set("0123456789."):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def _prepare(args: argparse.Namespace, argv: list[str]) -> int:
    from .tasks.corpus import PrepareOptions, prepare, summary, warnings

    opts = PrepareOptions(inputs=tuple(args.input), out=args.out, test=args.test,
                          test_fraction=args.test_fraction, seed=args.seed, min_count=args.min_count,
                          max_vocab=args.max_vocab, split_punctuation=args.split_punctuation,
                          vocab_from_test=args.vocab_from_test,
                          lowercase=args.lowercase, max_len=args.max_len, long=args.long,
                          shard_rows=args.shard_rows, force=args.force, progress=not args.quiet)
    check_folder(args.out, key="--out", value=str(args.out))  # before the text is read
    start = time.perf_counter()
    try:
        meta = prepare(opts)
    except KeyboardInterrupt:
        print(f"interrupted; {args.out} is as it was", file=sys.stderr)
        return 130
    for line in warnings(meta):
        print(line, file=sys.stderr)
    print("\n".join(summary(meta, args.out)) + f" in {time.perf_counter() - start:.1f} s")
    return 0


def _evaluate(args: argparse.Namespace, argv: list[str]) -> int:
    from .experiments.frontier import (FILES, frontier, frontier_markdown, load_runs, load_tasks,
                                       parse_temperatures, write_frontier)

    temperatures = parse_temperatures(args.temperatures)
    if args.num is not None and args.num < 1:
        raise ConfigError(f"--num {args.num}: give 1 or more samples")
    runs = load_runs(args.run, checkpoint=args.checkpoint)  # every folder checked before any work
    tasks = load_tasks(runs)
    frontiers = {}
    for label, (run_dir, cfg, generator) in runs.items():
        if not args.quiet:
            print(f"{label}: {tasks[label].source}", file=sys.stderr)
        frontiers[label] = frontier(cfg, tasks[label], generator, temperatures, num=args.num, seed=args.seed,
                                    progress=not args.quiet)
    for label, (run_dir, _, _) in runs.items():
        write_frontier({label: frontiers[label]}, run_dir)
    written = [run_dir for run_dir, _, _ in runs.values()]
    if args.out is not None:
        write_frontier(frontiers, args.out)
        written.append(args.out)
    print(f"wrote {', '.join(FILES)} in {', '.join(map(str, written))}", file=sys.stderr)
    print(frontier_markdown(frontiers), end="")
    return 0


def _sample(args: argparse.Namespace, argv: list[str]) -> int:
    import torch

    from .experiments.frontier import load_run
    from .tasks.corpus import Vocab

    if args.num < 1:
        raise ConfigError(f"--num {args.num}: give 1 or more sequences")
    if not args.temperature > 0:
        raise ConfigError(f"--temperature {args.temperature:g}: a temperature must be > 0 (1 samples G as it is)")
    cfg, generator = load_run(args.run, checkpoint=args.checkpoint)
    rng = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():  # whole blocks, so a seed's first sequences are the same whatever --num
        blocks = [generator.sample(SAMPLE_BLOCK, generator=rng, temperature=args.temperature)
                  for _ in range(-(-args.num // SAMPLE_BLOCK))]
    seqs = torch.cat(blocks)[:args.num]
    vocab_file = args.run / "vocab.txt"
    if not vocab_file.is_file():  # the synthetic task: token ids
        print("\n".join(" ".join(map(str, row)) for row in seqs.tolist()))
        return 0
    words = vocab_file.read_text(encoding="utf-8").splitlines()
    if len(words) != cfg.data.vocab_size:
        raise CheckpointError(f"{vocab_file} has {len(words)} words but {args.run} was trained with "
                              f"data.vocab_size={cfg.data.vocab_size}; the vocabulary does not match")
    vocab = Vocab(words)
    print("\n".join(vocab.decode(row) for row in seqs.tolist()))
    return 0


def _reproduce(args: argparse.Namespace, argv: list[str]) -> int:
    from .experiments.report import write_report
    from .experiments.reproduce import load_plan, run_plan, start_in_background

    plan = load_plan(args.config, args.overrides)
    only = plan.select(args.runs.split(",")) if args.runs is not None else None
    seeds = plan.select_seeds(args.seeds) if args.seeds is not None else None
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: give 1 or more")
    if args.jobs > 1 and not args.no_ray:
        raise ConfigError("--jobs N trains each run in its own process without Ray: add --no-ray (with "
                          "Ray, one process drives the rollout pool; give the pool the cores instead)")
    if args.stack_seeds and not args.no_ray:
        raise ConfigError("--stack-seeds trains every role of the stacked runs in one process: add --no-ray")
    command = " ".join(["python run.py reproduce", f"--config {args.config}", *args.overrides])
    args.run_dir = plan.rep.out_dir  # named by the interruption message
    if not args.report_only:  # before Ray starts or anything is trained
        check_folder(plan.rep.out_dir, key="reproduce.out_dir", value=plan.rep.out_dir)
    if args.background:
        log = Path(plan.rep.out_dir) / "reproduce.log"
        pid = start_in_background(argv, log)
        print(f"started in the background (PID {pid}); follow it with: tail -f {log}\n"
              f"stop it with kill {pid}, and continue with the same command", file=sys.stderr)
        return 0
    failed: list[str] = []
    if not args.report_only:
        spec = None
        if not args.no_ray:
            from .distributed.cluster import connect, load_cluster

            spec = load_cluster(args.cluster or DEFAULT_CLUSTER)
            connect(spec, argv)
        failed = run_plan(plan, spec, only=only, seeds=seeds, jobs=args.jobs, pretrain_only=args.pretrain_only,
                          stack_seeds=args.stack_seeds, child_args=["--config", str(args.config), *args.overrides, "--no-ray"])
        if failed:
            print(f"error: {', '.join(failed)} failed; see their logs", file=sys.stderr)
    if not args.no_report:
        print(f"report: {write_report(plan, command)}")
    return 1 if failed else 0


def _tune(args: argparse.Namespace, argv: list[str]) -> int:
    from .distributed.cluster import connect, load_cluster
    from .distributed.sweep import load_sweep, load_sweep_setup, run_sweep

    if args.resume:
        base, sweep = load_sweep_setup(args.resume)
    elif args.config is None:
        raise ConfigError("run.py tune needs --config SWEEP_FILE (e.g. configs/tune_oracle.yaml) or --resume DIR")
    else:
        base, sweep = load_sweep(args.config, args.overrides)
        check_folder(Path(sweep.out_dir) / sweep.name, key="tune.out_dir", value=sweep.out_dir)
    spec = load_cluster(args.cluster or DEFAULT_CLUSTER)
    connect(spec, argv)
    sweep_dir, unfinished = run_sweep(base, sweep, spec, resume_dir=args.resume)
    print(f"sweep folder: {sweep_dir}", file=sys.stderr)
    return 130 if unfinished else 0


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    import shutil

    import yaml

    from .algorithms import describe
    from .distributed.recovery import run_training
    from .tasks.text import load_task
    from .trainer import check_task

    if args.resume:
        if args.config or args.start_from:
            raise ConfigError(f"--resume uses the run's own config.yaml and checkpoints; drop "
                              f"{'--config' if args.config else '--from'}")
        if not (args.resume / "config.yaml").is_file():
            raise CheckpointError(f"{args.resume}: not a run folder (no config.yaml)")
        was = load_config(args.resume / "config.yaml", saved=True).train.method
        cfg = load_config(args.resume / "config.yaml", args.overrides, saved=True)
        if cfg.train.method != was:
            raise ConfigError(f"train.method={cfg.train.method}: {args.resume} was trained with train.method {was}, "
                              f"and --resume goes on with it. To go on from its checkpoint as {cfg.train.method}, "
                              f"start a new run from it: python run.py --from "
                              f"{latest_checkpoint(args.resume / 'checkpoints')} train.method={cfg.train.method}")
        run_dir = args.resume
    else:
        cfg = load_config(args.config, args.overrides)
        if args.start_from is not None and not args.start_from.is_file():
            raise CheckpointError(f"--from {args.start_from}: no such checkpoint file")
        run_dir = Path(cfg.run.out_dir) / (cfg.run.name or time.strftime("%Y%m%d-%H%M%S"))
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    if not args.resume:
        check_folder(run_dir, key="run.out_dir", value=cfg.run.out_dir)  # before Ray or training
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(f"run folder {run_dir} already exists; set run.name to another name "
                              f"or continue it with --resume {run_dir}")
    args.run_dir = run_dir
    if args.quiet:
        cfg.run.progress = False
    spec = None
    if not args.no_ray:
        from .distributed.cluster import connect, load_cluster

        spec = load_cluster(args.cluster or DEFAULT_CLUSTER)  # the file checked before any work

    made = next((p for p in [*reversed(run_dir.parents), run_dir] if not p.exists()), None)
    try:  # bad data is found before Ray starts, and leaves no folder behind
        task = load_task(cfg.data, run_dir)
        check_task(cfg, task)
    except (ConfigError, DataError):
        if made is not None:  # the first folder on the way that this run made
            shutil.rmtree(made, ignore_errors=True)
        raise
    for why in unread_keys(cfg).values():
        print(f"warning: {why}; it has no effect", file=sys.stderr)
    print(describe(cfg), file=sys.stderr)
    print(f"data: {task.source}", file=sys.stderr)

    size = None
    if spec is not None:
        import ray

        connect(spec, argv)
        size = spec.pool_size(ray.cluster_resources())
        print(f"roles: Ray ({spec.path.name}): learner, discriminator and {size} rollout actors "
              f"on {len(ray.nodes())} node(s)", file=sys.stderr)
    else:
        print("roles: in-process (no Ray)", file=sys.stderr)
    result = run_training(cfg, task, run_dir, spec, pool_size=size, resume=bool(args.resume),
                          start_from=args.start_from, retries=ROLE_RETRIES)
    print(f"run folder: {run_dir}\n{summary_text(result.summary, cfg.train.method)}")
    return 0


def summary_text(s: dict, method: str = "seqgan") -> str:
    """The end-of-run lines: the task's metrics untrained, after pretraining, after the phase
    train.method runs (adversarial, or more MLE epochs for the MLE baselines)."""
    phase = "the MLE epochs" if method in ("mle", "scheduled_sampling") else "adversarial"
    f = lambda v: "n/a" if v is None else f"{v:.3f}"
    last = f"after {phase}"
    if "oracle_nll_random" in s:
        return (f"NLL-oracle: random {f(s['oracle_nll_random'])}, after pretraining "
                f"{f(s['oracle_nll_after_pretraining'])}, {last} "
                f"{f(s['oracle_nll_after_adversarial'])} (training data "
                f"{f(s['oracle_nll_of_training_data'])}); wall time {s['wall_time_s']:.0f} s")
    lines = []
    for label, key in (("random", "eval_random"), ("after pretraining", "eval_after_pretraining"),
                       (last, "eval_after_adversarial")):
        m = s.get(key) or {}
        bleu = "/".join(f(m.get(f"eval/bleu{n}")) for n in range(2, 6))
        sb = "/".join(f(m.get(f"eval/self_bleu{n}")) for n in range(2, 6))
        lines.append(f"{label}: NLL-test {f(m.get('eval/nll_test'))}, BLEU-2..5 {bleu}, Self-BLEU-2..5 {sb}")
    return "\n".join(lines) + f"\nwall time {s['wall_time_s']:.0f} s"


if __name__ == "__main__":
    sys.exit(main())
