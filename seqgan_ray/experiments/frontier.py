"""The quality-diversity frontier of a trained generator: its metrics at each sampling temperature.

Sampled at a temperature τ < 1 (softmax(logits / τ), sharper), a generator scores a better
NLL-oracle and covers less of the oracle's sequences; τ > 1 the other way. Caccia et al.
2020 ("Language GANs Falling Short") compare models by this whole curve, not by one point
at τ = 1: SeqGAN buys something MLE does not only if its frontier lies below MLE's.

For each τ: the task's own evaluation (`task.evaluate`, the same that training logs) of
`num` samples drawn at τ, with NLL-test taken under the same tempered distribution:
    synthetic: NLL-oracle of the samples (quality) ± its 95% half-width, NLL-test (coverage)
    text:      BLEU-2..5 against the test split, Self-BLEU-2..5 among the samples, NLL-test
Every temperature draws its samples from the same seed: the sampler turns the same uniforms
into the tokens of each τ, so neighbouring points differ by τ and not by sampling noise.

    points = frontier(cfg, task, generator, [0.8, 1.0, 1.2], num=10_000, seed=0)
    write_frontier({"seqgan": points}, run_dir)  # frontier.csv, frontier.md, frontier.png
"""

from __future__ import annotations

import copy
import csv
import io
import math
from pathlib import Path
from typing import NamedTuple, Sequence

import torch

from ..checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from ..config import Config, ConfigError, load_config
from ..models.policy import LSTMPolicy
from ..roles import make_generator, pick_device
from ..runlog import Progress
from ..tasks import BLEU_ORDERS, SyntheticTask, TextTask, load_task

DEFAULT_TEMPERATURES = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)
FILES = ("frontier.csv", "frontier.md", "frontier.png")


class FrontierPoint(NamedTuple):
    """A generator's metrics at one sampling temperature; every NLL in nats per token, lower
    is better. The synthetic task fills the oracle fields, a text task the BLEU ones."""

    temperature: float
    nll_test: float                            # NLL of the held-out set under softmax(logits / τ)
    oracle_nll: float | None = None            # the oracle's NLL of the samples
    oracle_nll_ci95: float | None = None       # its 95% confidence half-width
    bleu: tuple[float, ...] | None = None      # BLEU-2..5 against the test split
    self_bleu: tuple[float, ...] | None = None  # Self-BLEU-2..5 among the samples


Frontiers = dict[str, list[FrontierPoint]]  # a label (the run's name) -> its points


def frontier(cfg: Config, task: SyntheticTask | TextTask, generator: LSTMPolicy,
             temperatures: Sequence[float], *, num: int | None = None, seed: int = 0,
             device: torch.device | str | None = None, progress: bool = False) -> list[FrontierPoint]:
    """`generator`'s metrics on `task` at each of `temperatures`, in that order, from `num`
    samples (default: the run's `cfg.train.eval_samples`) drawn with `seed` at every τ.
    Samples on `device` (default: the GPU when torch sees one); `generator` itself is not
    moved. `progress`: a line on stderr per temperature. Raises ConfigError for num < 1 or a
    temperature that is not > 0."""
    check_temperatures(temperatures)
    num = cfg.train.eval_samples if num is None else num
    if num < 1:
        raise ConfigError(f"the number of samples must be >= 1, not {num}")
    device = torch.device(device) if device is not None else pick_device()
    gen = copy.deepcopy(generator).requires_grad_(False).to(device)
    bar = Progress("frontier", len(temperatures), enabled=progress)
    points, held_out = [], {}

    def nll_test(seqs: torch.Tensor, tau: float) -> float:
        # the held-out set's NLL at every τ in one pass (G's states once, not once a τ), on the
        # first call; the task scores the same held-out set at each τ
        if held_out.get("seqs") is not seqs:
            at = (gen.nll_at(seqs.to(device), temperatures) if hasattr(gen, "nll_at")
                  else [gen.nll(seqs.to(device), temperature=t) for t in temperatures])
            held_out.update(seqs=seqs, at=dict(zip(temperatures, at)))
        return held_out["at"][tau]

    for i, tau in enumerate(temperatures):
        rng = torch.Generator(device).manual_seed(seed)
        samples = gen.sample(num, generator=rng, temperature=tau).cpu()  # (num, T)
        metrics = task.evaluate(samples, lambda seqs, tau=tau: nll_test(seqs, tau))
        points.append(_point(tau, metrics))
        bar.update(i + 1, f"τ = {_tau(tau)}")
    return points


def _point(tau: float, m: dict[str, float]) -> FrontierPoint:
    if "eval/oracle_nll" in m:
        return FrontierPoint(tau, m["eval/nll_test"], oracle_nll=m["eval/oracle_nll"],
                             oracle_nll_ci95=m["eval/oracle_nll_ci95"])
    return FrontierPoint(tau, m["eval/nll_test"], bleu=tuple(m[f"eval/bleu{n}"] for n in BLEU_ORDERS),
                         self_bleu=tuple(m[f"eval/self_bleu{n}"] for n in BLEU_ORDERS))


# ---------------------------------------------------------------------- inputs

def parse_temperatures(text: str) -> tuple[float, ...]:
    """"0.7,1,1.3" -> (0.7, 1.0, 1.3); "0.7,0.8,...,1.3" -> 0.7 to 1.3 in steps of 0.1, and
    "1.3,1.2,...,0.7" down (the step is the difference of the two numbers before "...").
    ConfigError for anything else, or a temperature that is not > 0."""
    usage = (f"--temperatures {text!r}: give numbers > 0 separated by commas, e.g. 0.8,1,1.2 "
             f"or 0.7,0.8,...,1.3")
    parts = [p.strip() for p in text.split(",")]
    try:
        if "..." not in parts:
            values = [float(p) for p in parts]
        else:
            i = parts.index("...")
            if i < 2 or i != len(parts) - 2:
                raise ValueError
            values = [float(p) for p in parts[:i]]
            end, step = float(parts[-1]), values[-1] - values[-2]
            n = round((end - values[-1]) / step) if step != 0 else -1
            if n < 0 or not math.isclose(values[-1] + n * step, end, rel_tol=1e-9, abs_tol=1e-9):
                raise ValueError
            values += [round(values[-1] + k * step, 10) for k in range(1, n + 1)]
    except (ValueError, ZeroDivisionError, OverflowError):
        raise ConfigError(usage) from None
    try:
        check_temperatures(values)
    except ConfigError:
        raise ConfigError(usage) from None
    return tuple(values)


def check_temperatures(temperatures: Sequence[float]) -> None:
    if not temperatures:
        raise ConfigError("no temperatures given")
    bad = [t for t in temperatures if not (math.isfinite(t) and t > 0)]
    if bad:
        raise ConfigError(f"temperature {bad[0]:g}: a temperature must be a finite number > 0")


def load_run(run_dir: Path, *, checkpoint: Path | None = None) -> tuple[Config, LSTMPolicy]:
    """A run folder's config and trained generator, read from `checkpoint` when given (a
    checkpoint of the run, or a generator state dict like generator.pt), else from
    `run_dir/generator.pt` (written when the run ends), else from the run's newest checkpoint.
    CheckpointError if the folder is not a run or holds no generator."""
    if not (run_dir / "config.yaml").is_file():
        if (run_dir / "run" / "config.yaml").is_file():  # a Tune trial's folder holds its run
            raise CheckpointError(f"{run_dir}: a sweep trial's folder; its run is {run_dir / 'run'}")
        raise CheckpointError(f"{run_dir}: not a run folder (no config.yaml)")
    cfg = load_config(run_dir / "config.yaml", saved=True)
    if checkpoint is not None and not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint}: no such checkpoint file")
    if checkpoint is None:
        checkpoint = run_dir / "generator.pt"
        if not checkpoint.is_file():
            try:
                checkpoint = latest_checkpoint(run_dir / "checkpoints")
            except CheckpointError:
                raise CheckpointError(f"{run_dir}: no generator.pt and no checkpoint in "
                                      f"{run_dir / 'checkpoints'}; nothing to evaluate yet") from None
    generator = make_generator(cfg, 0)
    try:
        generator.load_state_dict(_generator_state(checkpoint, cfg))
    except (RuntimeError, TypeError, AttributeError, KeyError) as exc:
        raise CheckpointError(f"{checkpoint}: does not hold a generator of this run's shape "
                              f"({str(exc).splitlines()[0]})") from None
    return cfg, generator


def _generator_state(path: Path, cfg: Config) -> dict[str, torch.Tensor]:
    """The generator's state dict in `path`: a checkpoint (checked by `load_checkpoint`) or
    the state dict itself (`torch.save(learner.weights(), ...)`)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle garbage, ...
        raise CheckpointError(f"{path}: corrupt or unreadable ({type(exc).__name__})") from None
    if isinstance(state, dict) and "learner" in state:
        return load_checkpoint(path, cfg)["learner"]["generator"]
    return state


def load_runs(run_dirs: Sequence[Path], *,
              checkpoint: Path | None = None) -> dict[str, tuple[Path, Config, LSTMPolicy]]:
    """`load_run` of each folder, keyed by its label in tables and plots: the folder's name, or
    its path where two names are the same. Every folder is checked before anything is
    evaluated; `checkpoint` goes with a single run only, and the runs must share a task kind."""
    if checkpoint is not None and len(run_dirs) > 1:
        raise ConfigError("--checkpoint names one run's checkpoint; give a single run with it")
    names = [Path(d).resolve().name for d in run_dirs]
    labels = [n if names.count(n) == 1 else str(d) for n, d in zip(names, run_dirs)]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"a run folder is given twice: {', '.join(map(str, run_dirs))}")
    runs = {label: (Path(d), *load_run(Path(d), checkpoint=checkpoint)) for label, d in zip(labels, run_dirs)}
    if len({bool(cfg.data.corpus) for _, cfg, _ in runs.values()}) > 1:
        raise ConfigError("the runs mix the synthetic task and a text task; evaluate them apart")
    return runs


def load_tasks(runs: dict[str, tuple[Path, Config, LSTMPolicy]]) -> dict[str, SyntheticTask | TextTask]:
    """Each run's task, `load_task(cfg.data, run_dir)`, keyed like `runs`. Synthetic runs with
    the same data config share one task, and so its held-out samples, drawn once (12 s at the
    paper's size on 2 CPU cores)."""
    tasks: dict[str, SyntheticTask | TextTask] = {}
    loaded: list[tuple[Config, SyntheticTask | TextTask]] = []
    for label, (run_dir, cfg, _) in runs.items():
        same = [task for other, task in loaded if not cfg.data.corpus and other.data == cfg.data]
        tasks[label] = same[0] if same else load_task(cfg.data, run_dir)
        loaded.append((cfg, tasks[label]))
    return tasks


# ---------------------------------------------------------------------- outputs

def columns(frontiers: Frontiers) -> list[str]:
    """The table's header: the synthetic task's, or a text task's."""
    if _is_synthetic(frontiers):
        return ["run", "temperature", "NLL-oracle", "±", "NLL-test"]
    return (["run", "temperature"] + [f"BLEU-{n}" for n in BLEU_ORDERS]
            + [f"Self-BLEU-{n}" for n in BLEU_ORDERS] + ["NLL-test"])


def rows(frontiers: Frontiers) -> list[list[object]]:
    """The table's rows, one per (run, temperature), in the order given; values unrounded."""
    out = []
    for label, points in frontiers.items():
        for p in points:
            if p.oracle_nll is not None:
                out.append([label, p.temperature, p.oracle_nll, p.oracle_nll_ci95, p.nll_test])
            else:
                out.append([label, p.temperature, *p.bleu, *p.self_bleu, p.nll_test])
    return out


def _is_synthetic(frontiers: Frontiers) -> bool:
    kinds = {p.oracle_nll is not None for points in frontiers.values() for p in points}
    if len(kinds) > 1:
        raise ConfigError("the runs mix the synthetic task and a text task; evaluate them apart")
    return kinds != {False}


def frontier_markdown(frontiers: Frontiers) -> str:
    """The table in Markdown, 3 decimals (what `run.py evaluate` prints)."""
    head = columns(frontiers)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows(frontiers):
        label, tau, *values = row
        lines.append("| " + " | ".join([str(label), _tau(tau), *(f"{v:.3f}" for v in values)]) + " |")
    return "\n".join(lines) + "\n"


def _tau(t: float) -> str:
    """0.7 -> "0.7", 1 -> "1.0": the shortest form, always with a decimal point."""
    s = f"{t:g}"
    return s if "." in s or "e" in s else s + ".0"


def frontier_csv(frontiers: Frontiers) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns(frontiers))
    writer.writerows(rows(frontiers))
    return buf.getvalue()


def plot_frontier(frontiers: Frontiers, png: Path, *, title: str = "quality-diversity frontier") -> None:
    """One line per run through its temperatures, each point labelled with its τ. Synthetic:
    NLL-test (x) against NLL-oracle (y), with the 95% interval; text: Self-BLEU-5 (x) against
    BLEU-5 (y). Better is down-left for the synthetic task, up-left for text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    synthetic = _is_synthetic(frontiers)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in frontiers.items():
        points = sorted(points, key=lambda p: p.temperature)
        if synthetic:
            xs, ys = [p.nll_test for p in points], [p.oracle_nll for p in points]
            ax.errorbar(xs, ys, yerr=[p.oracle_nll_ci95 for p in points], marker="o", markersize=3,
                        capsize=2, elinewidth=0.8, label=label)
        else:
            xs, ys = [p.self_bleu[-1] for p in points], [p.bleu[-1] for p in points]
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
        for p, x, y in zip(points, xs, ys):
            ax.annotate(_tau(p.temperature), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    if synthetic:
        ax.set_xlabel("NLL-test (nats per token; lower: covers more of the oracle)")
        ax.set_ylabel("NLL-oracle (nats per token; lower: better samples)")
    else:
        ax.set_xlabel(f"Self-BLEU-{BLEU_ORDERS[-1]} (lower: more diverse)")
        ax.set_ylabel(f"BLEU-{BLEU_ORDERS[-1]} (higher: better samples)")
    ax.set_title(f"{title} (labels: temperature)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def read_frontier(path: Path) -> Frontiers:
    """The runs' points from a frontier.csv that `write_frontier` wrote (the synthetic task's
    or a text task's columns)."""
    with open(path, encoding="utf-8", newline="") as f:
        table = list(csv.reader(f))
    if not table or table[0] not in (columns({"x": [FrontierPoint(1.0, 0.0, 0.0, 0.0)]}),
                                      columns({"x": [FrontierPoint(1.0, 0.0, bleu=(), self_bleu=())]})):
        raise ConfigError(f"{path}: not a frontier table written by run.py evaluate")
    synthetic, n = table[0][2] == "NLL-oracle", len(BLEU_ORDERS)
    out: Frontiers = {}
    for line, row in enumerate(table[1:], start=2):
        try:
            label, tau, *v = row[0], *map(float, row[1:])
        except ValueError:
            raise ConfigError(f"{path}, line {line}: a value that is not a number") from None
        point = (FrontierPoint(tau, v[2], oracle_nll=v[0], oracle_nll_ci95=v[1]) if synthetic else
                 FrontierPoint(tau, v[-1], bleu=tuple(v[:n]), self_bleu=tuple(v[n:2 * n])))
        out.setdefault(label, []).append(point)
    return out


def efficient_branch(baseline: Sequence[FrontierPoint]) -> list[FrontierPoint]:
    """`baseline`'s points at or below the temperature of its lowest NLL-test, by temperature:
    the branch where a lower τ trades coverage for quality. Above that temperature NLL-test
    rises again (the samples spread past the data) while NLL-oracle worsens too, so no one
    would sample there, and reading a gap off it would credit a run for beating a bad choice."""
    if not baseline:
        return []
    turn = min(baseline, key=lambda p: p.nll_test).temperature
    return sorted((p for p in baseline if p.temperature <= turn), key=lambda p: p.temperature)


def baseline_at(baseline: Sequence[FrontierPoint], nll_test: float) -> tuple[float, float] | None:
    """The baseline's NLL-oracle at `nll_test` and its 95% half-width, on its efficient branch,
    linear between the two temperatures whose NLL-test brackets it (the half-width likewise: the
    two points share the sampler's uniforms, so their errors move together); None outside the
    branch's range (a run with a better NLL-test than any of the baseline's temperatures)."""
    curve = efficient_branch(baseline)
    for a, b in zip(curve, curve[1:]):
        lo, hi = sorted((a.nll_test, b.nll_test))
        if lo <= nll_test <= hi and hi > lo:
            w = (nll_test - a.nll_test) / (b.nll_test - a.nll_test)
            return ((1 - w) * a.oracle_nll + w * b.oracle_nll,
                    (1 - w) * (a.oracle_nll_ci95 or 0.0) + w * (b.oracle_nll_ci95 or 0.0))
    if len(curve) == 1 and math.isclose(curve[0].nll_test, nll_test):
        return curve[0].oracle_nll, curve[0].oracle_nll_ci95 or 0.0
    return None


def frontier_gap(points: Sequence[FrontierPoint], baseline: Sequence[FrontierPoint]) -> list[tuple[float, float]]:
    """Synthetic task: for each of `points` whose NLL-test lies within the range of
    `baseline`'s efficient branch, (temperature, its NLL-oracle minus the baseline's at the
    same NLL-test, `baseline_at`). Negative: better samples at the same coverage, which no
    temperature gives the baseline; positive: worse."""
    return [(p.temperature, p.oracle_nll - base[0]) for p in points
            if (base := baseline_at(baseline, p.nll_test)) is not None]


def write_frontier(frontiers: Frontiers, out_dir: Path) -> list[Path]:
    """Write `frontiers` (a label per generator -> its points) as out_dir/frontier.csv,
    frontier.md and frontier.png; returns those paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = (out_dir / name for name in FILES)
    csv_path.write_text(frontier_csv(frontiers), encoding="utf-8")
    md_path.write_text(frontier_markdown(frontiers), encoding="utf-8")
    title = "quality-diversity frontier" + (f", {next(iter(frontiers))}" if len(frontiers) == 1 else "")
    plot_frontier(frontiers, png_path, title=title)
    return [csv_path, md_path, png_path]
