"""Large corpora: what ten times the corpus costs, and Ray Train's MLE with 1 worker vs 2.

    python -m seqgan_ray.experiments.scale                  # 100k vs 1M sentences, then Ray Train
    python -m seqgan_ray.experiments.scale --quick          # small and short: a smoke test
    python -m seqgan_ray.experiments.scale --sections corpus --json scale.json

corpus: two generated corpora, one ten times the other, each measured in a fresh process of
its own (so a peak RSS is that size's alone), alternating small, large, small, large:
  - adversarial: SeqGAN iterations at EMNLP2017 news's shape (V 5,255, T 51; the paper's G and
    D, a cut-down batch and rollout count, since only what depends on the corpus is at stake),
    a discriminator round each; the median iteration's time and its D round's, peak RSS;
  - MLE: one whole epoch at a small shape (V 200, T 20, G 16/16, batch 256), time and peak RSS.
  The first open of a corpus writes its token cache (tasks/reader.py): timed on its own.
ray_train: MLE pretraining on Ray Train (train.pretrain_workers), sentences a second in its
  second epoch: 1 worker x 2 threads and 2 workers x 1 thread on embedded Ray, and 2 workers
  on a simulated two-node cluster (ray.cluster_utils), one on each node.

Nothing here asserts a timing; docs/scaling.md has the figures of a full run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .bench import cpu_busy, cpu_model, embedded_ray, table, two_node_cluster

SECTIONS = ("corpus", "ray_train")
EMNLP = {"vocab": 5255, "T": 51}   # EMNLP2017 news as the text-GAN papers use it (~270k sentences)
MLE_SHAPE = {"vocab": 200, "T": 20}
ADV_OVERRIDES = ["generator.batch_size=16", "rollout.num_rollouts=2", "discriminator.batch_size=64",
                 "train.g_steps=1", "train.d_steps=1", "train.k_epochs=1"]
MLE_OVERRIDES = ["generator.emb_dim=16", "generator.hidden_dim=16", "generator.batch_size=256"]


@dataclass(frozen=True)
class Sizes:
    corpus_rows: tuple[int, int] = (100_000, 1_000_000)
    adversarial_shape: tuple[int, int] = (EMNLP["vocab"], EMNLP["T"])  # V, T
    negatives: int = 1024      # of each D round, and as many sampled real sentences
    repeats: int = 2           # each size measured this many times, alternating
    iterations: int = 3        # adversarial iterations per measurement (the first is warm-up)
    ray_train_rows: int = 100_000


FULL = Sizes()
QUICK = Sizes(corpus_rows=(1_000, 10_000), adversarial_shape=(500, 12), negatives=128, repeats=1, iterations=2,
              ray_train_rows=5_000)


def write_corpus(folder: Path, rows: int, *, vocab: int, T: int, seed: int = 0, test_rows: int = 10_000,
                 shard_rows: int = 100_000) -> Path:
    """A prepared corpus of `rows` random sentences (3..T-1 words, then <eos>), as `prepare`
    writes one: vocab.txt, train/ and test/ shards, metadata.json."""
    from ..tasks.corpus import EOS, FORMAT, SCHEMA, SPECIALS

    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("".join(f"{w}\n" for w in [*SPECIALS, *(f"w{i}" for i in range(4, vocab))]))
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", rows), ("test", test_rows)):
        (folder / split).mkdir()
        shards = 0
        for start in range(0, n, shard_rows):
            m = min(shard_rows, n - start)
            lengths = rng.integers(4, T + 1, size=m).astype(np.int32)  # with the <eos>
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            values = rng.integers(4, vocab, size=int(offsets[-1])).astype(np.int32)
            values[offsets[1:] - 1] = EOS
            tokens = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
            pq.write_table(pa.Table.from_arrays([tokens, pa.array(lengths)], schema=SCHEMA),
                           folder / split / f"part-{shards:05d}.parquet")
            shards += 1
        splits[split] = {"lines": n, "kept": n, "truncated": 0, "dropped": {"empty_line": 0, "too_long": 0},
                         "longest_words": T - 1, "tokens": 0, "unk_tokens": 0, "shards": shards}
    meta = {"format": FORMAT, "vocab_size": vocab, "max_len": T, "max_len_from": "--max-len",
            "special_ids": {"pad": 0, "bos": 1, "eos": 2, "unk": 3}, "lowercase": True, "min_count": 1,
            "vocab_from_test": False, "words_seen": vocab - 4, "long": "drop", "shard_rows": shard_rows,
            "test_from": "file", "test_fraction": None, "seed": seed, "sources": {"train": [], "test": []},
            "splits": splits, "generated_by": "seqgan_ray.experiments.scale.write_corpus"}
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --------------------------------------------------------------------------- one measurement, in its own process

def measure(kind: str, corpus: Path, iterations: int, threads: int, negatives: int) -> dict[str, Any]:
    """In this (fresh) process: open `corpus`, then `kind` ("adversarial" or "mle")."""
    import torch

    from ..config import load_config
    from ..tasks.text import load_task
    from ..trainer import Trainer, local_roles

    torch.set_num_threads(threads)
    overrides = [*ADV_OVERRIDES, f"train.num_negatives={negatives}"] if kind == "adversarial" else MLE_OVERRIDES
    cfg = load_config(None, [f"data.corpus={corpus}", "run.progress=false", *overrides])
    t0 = time.perf_counter()
    task = load_task(cfg.data)
    out: dict[str, Any] = {"open_s": time.perf_counter() - t0, "rows": task.num_train}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, task, local_roles(cfg), Path(tmp))
        if kind == "mle":
            t0 = time.perf_counter()
            out["mle_loss"] = trainer.mle_epoch()
            out["epoch_s"] = time.perf_counter() - t0
        else:
            algorithm = trainer.algorithm
            algorithm.start(trainer, fresh=True)
            its = []
            for it in range(1, iterations + 1):
                t0 = time.perf_counter()
                metrics, _ = algorithm.iteration(trainer, it)
                its.append({"iteration_s": time.perf_counter() - t0, "d_round_s": metrics["time/d_train_s"]})
            steady = its[1:] or its  # the first iteration warms up
            out.update({k: statistics.median(i[k] for i in steady) for k in ("iteration_s", "d_round_s")})
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def in_fresh_process(kind: str, corpus: Path, sizes: Sizes, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "seqgan_ray.experiments.scale", "--measure", kind, str(corpus),
           "--iterations", str(sizes.iterations), "--negatives", str(sizes.negatives), "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- sections

def section_corpus(sizes: Sizes, results: dict, work: Path, threads: int, log) -> None:
    small, large = sizes.corpus_rows
    out: dict[str, dict[int, list[dict]]] = {"adversarial": {small: [], large: []}, "mle": {small: [], large: []}}
    adversarial = {"vocab": sizes.adversarial_shape[0], "T": sizes.adversarial_shape[1]}
    for kind, shape in (("adversarial", adversarial), ("mle", MLE_SHAPE)):
        for rows in (small, large):
            log(f"corpus: writing {rows:,} sentences, V {shape['vocab']}, T {shape['T']}")
            write_corpus(work / f"{kind}-{rows}", rows, vocab=shape["vocab"], T=shape["T"])
        for r in range(sizes.repeats):
            for rows in (small, large) if r % 2 == 0 else (large, small):
                log(f"corpus: {kind}, {rows:,} sentences, repeat {r + 1}" + (" (builds the token cache)" if not r else ""))
                out[kind][rows].append(in_fresh_process(kind, work / f"{kind}-{rows}", sizes, threads))

    def figures_of(runs: list[dict]) -> dict[str, float]:
        """Medians; the first run's open wrote the token cache (first_open_s), later ones read it."""
        fig = {key: statistics.median(m[key] for m in runs) for key in runs[0] if key != "open_s"}
        fig["first_open_s"] = runs[0]["open_s"]
        if len(runs) > 1:
            fig["open_s"] = statistics.median(m["open_s"] for m in runs[1:])
        return fig

    figures = {kind: {rows: figures_of(out[kind][rows]) for rows in (small, large)} for kind in out}
    results["corpus"] = {"sizes": [small, large], "figures": figures, "runs": out}
    rows_out = []
    for kind, keys in (("adversarial", ("iteration_s", "d_round_s", "peak_rss_mb", "first_open_s", "open_s")),
                       ("mle", ("epoch_s", "peak_rss_mb", "first_open_s", "open_s"))):
        for key in (k for k in keys if k in figures[kind][small]):
            a, b = figures[kind][small][key], figures[kind][large][key]
            rows_out.append([kind, key, a, b, b / a if a else float("nan")])
    table(f"corpus: {small:,} vs {large:,} training sentences (each in a fresh process; median of "
          f"{sizes.repeats}, alternating)", ["phase", "figure", f"{small:,}", f"{large:,}", "ratio"], rows_out,
          [f"adversarial: V {adversarial['vocab']}, T {adversarial['T']}, {' '.join(ADV_OVERRIDES)}; the median of "
           f"iterations 2..{sizes.iterations}, each a D round on {sizes.negatives:,} sampled real + "
           f"{sizes.negatives:,} fake",
           f"mle: one whole epoch, V {MLE_SHAPE['vocab']}, T {MLE_SHAPE['T']}, {' '.join(MLE_OVERRIDES)}",
           "peak_rss_mb: the process's peak resident memory (torch itself ~300 MB of it); first_open_s: "
           "the first open, which writes the token cache (once per corpus); open_s: an open after it"])


def section_ray_train(sizes: Sizes, results: dict, work: Path, threads: int, log) -> None:
    import torch

    from ..config import load_config
    from ..distributed.cluster import ActorResources
    from ..distributed.pretrain import pretrain_on_ray_train
    from ..roles import make_generator

    folder = write_corpus(work / "ray_train", sizes.ray_train_rows, vocab=MLE_SHAPE["vocab"], T=MLE_SHAPE["T"])
    cfg = load_config(None, [f"data.corpus={folder}", "data.vocab_size=200", "data.seq_len=20",
                             "train.pretrain_g_epochs=2", *MLE_OVERRIDES])
    state = {k: v.clone() for k, v in make_generator(cfg, 0).state_dict().items()}
    # Ray Data needs one whole CPU unreserved on some node to list the shards (distributed/
    # pretrain.py), so on embedded Ray the workers reserve half a CPU each and their threads say
    # how many cores they use. On the two simulated nodes (3 CPUs and 2) a worker reserves 2:
    # two cannot share a node, so Ray Train's default PACK placement puts one on each, and the
    # head keeps a CPU free. (SPREAD over two 1-CPU-free nodes never started the worker group.)
    setups = [("1 worker x 2 threads", lambda: embedded_ray(2), 1, ActorResources(num_cpus=0.5, threads=2)),
              ("2 workers x 1 thread", lambda: embedded_ray(2), 2, ActorResources(num_cpus=0.5, threads=1)),
              ("2 workers on 2 simulated nodes", lambda: two_node_cluster(3, 2), 2, ActorResources(num_cpus=2, threads=1))]
    out, rows = {}, []
    for label, start, workers, res in setups:
        log(f"ray_train: {label}")
        with start():
            t0 = time.perf_counter()
            result = pretrain_on_ray_train(cfg, folder, num_workers=workers, worker=res, generator_state=state,
                                           storage=work / f"ray_train_{workers}")
            wall = time.perf_counter() - t0
        second = result.epoch_seconds[-1]
        out[label] = {"workers": workers, "epoch_s": result.epoch_seconds, "loss": result.epoch_losses,
                      "sentences_per_s": sizes.ray_train_rows / second, "wall_s": wall}
        rows.append([label, second, sizes.ray_train_rows / second, result.epoch_losses[-1], wall])
    base = out[setups[0][0]]["sentences_per_s"]
    for row, (label, *_rest) in zip(rows, setups):
        row.insert(3, out[label]["sentences_per_s"] / base)
    results["ray_train"] = {"rows": sizes.ray_train_rows, **out}
    table(f"ray_train: MLE on Ray Train, {sizes.ray_train_rows:,} sentences (V {MLE_SHAPE['vocab']}, "
          f"T {MLE_SHAPE['T']}, G 16/16, global batch 256), its second epoch",
          ["setup", "epoch s", "sentences/s", "vs 1 worker", "MLE loss", "wall s (2 epochs + start)"], rows,
          ["every setup on this machine's 2 cores; the simulated nodes are Ray processes of it"])
    torch.set_num_threads(threads)


RUNNERS = {"corpus": section_corpus, "ray_train": section_ray_train}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m seqgan_ray.experiments.scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {','.join(SECTIONS)}")
    ap.add_argument("--quick", action="store_true", help="1k vs 10k sentences, small shapes: a smoke test")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of each measuring process (default 2)")
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    ap.add_argument("--work", type=Path, help="folder for the generated corpora (default: a temporary one)")
    ap.add_argument("--measure", nargs=2, metavar=("KIND", "CORPUS"), help=argparse.SUPPRESS)  # the child
    ap.add_argument("--iterations", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--negatives", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:
        kind, corpus = args.measure
        print(json.dumps(measure(kind, Path(corpus), args.iterations, args.threads, args.negatives)))
        return {}
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section {bad[0]!r}; choose from {', '.join(SECTIONS)}")
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {"header": {"cpu": cpu_model(), "busy_before": round(cpu_busy(), 2),
                                          "quick": args.quick, "threads": args.threads}}
    print("seqgan_ray.experiments.scale: " + ", ".join(f"{k} {v}" for k, v in results["header"].items()))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for name in sections:
            RUNNERS[name](sizes, results, work, args.threads, log)
    results["header"]["wall_s"] = round(time.perf_counter() - started, 1)
    print(f"\nwall time {results['header']['wall_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


if __name__ == "__main__":
    main()
