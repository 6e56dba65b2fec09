"""The report of `run.py reproduce`: the runs' final NLL-oracle beside the paper's Table 1 with
95% confidence intervals over the seeds, each run's best evaluation and NLL-test, the
quality-diversity frontiers, a plot like the paper's Figure 2, wall times and configs. On a
corpus (render_text): each run's BLEU-2..5, Self-BLEU-2..5 and NLL-test, the published numbers
under it. Everything below NOTES_MARKER in an existing report is kept when it is written again
(a report written by hand, with no marker, is kept whole below it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError
from ..tasks.text import BLEU_ORDERS
from .reproduce import Plan

# Yu et al. 2017, Table 1: NLL-oracle of each method on the synthetic task.
PAPER = {"random": 10.310, "mle": 9.038, "scheduled_sampling": 8.985, "pg_bleu": 8.946, "seqgan": 8.736}
PAPER_LABELS = {"random": "Random", "mle": "MLE", "scheduled_sampling": "Scheduled Sampling",
                "pg_bleu": "PG-BLEU", "seqgan": "SeqGAN", "leakgan": "LeakGAN", "relgan": "RelGAN",
                "gsgan": "GSGAN", "textgan": "TextGAN", "maskgan": "MaskGAN", "maskmle": "MaskMLE"}
# An iteration's parts, as the algorithms log them (seconds), for the report's time table.
TIME_PARTS = {"time/sample_s": "G batch", "time/rollout_s": "rewards", "time/g_update_s": "G step",
              "time/negatives_s": "negatives", "time/d_train_s": "D training", "time/iteration_s": "iteration"}
BAR = 8.74  # what SeqGAN must reach (the paper: 8.736)
NOTES_MARKER = "<!-- notes: everything below this line is kept when the report is rewritten -->"

T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


@dataclass
class Outcome:
    """One row of the table: the final NLL-oracle of a run, over the seeds that finished."""

    values: list[float]       # one per seed
    sample_ci: list[float]    # the 95% half-width from each seed's evaluation samples
    wall_s: list[float]
    nll_test: list[float] = field(default_factory=list)  # G's NLL of held-out oracle samples
    where: list[str] = field(default_factory=list)        # "CPU" or "GPU", per seed
    seeds: list[int] = field(default_factory=list)
    best: list[float] = field(default_factory=list)     # the lowest evaluation of the adversarial
    best_at: list[int] = field(default_factory=list)    # phase, and its iteration, per seed
    extra: list[dict[str, float]] = field(default_factory=list)  # reproduce.metrics of the last evaluation, per seed

    def on(self, seeds: list[int]) -> "Outcome":
        """This outcome over `seeds` only (those of them it has), to compare runs seed for seed."""
        keep = [i for i, s in enumerate(self.seeds) if s in seeds]
        pick = {f.name: getattr(self, f.name) for f in fields(self)}
        return Outcome(**{name: [xs[i] for i in keep] if xs else [] for name, xs in pick.items()})

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def ci(self) -> float:
        """95% half-width of the mean: a t-interval over the seeds when there are 3 or more;
        else from the evaluation samples alone (each seed's, combined), which leaves out how
        much training itself varies from seed to seed: the per-seed values show that."""
        k = len(self.values)
        if k < 3:
            return math.sqrt(sum(h * h for h in self.sample_ci)) / k
        sd = math.sqrt(sum((v - self.mean) ** 2 for v in self.values) / (k - 1))
        return T_975.get(k - 1, 1.96) * sd / math.sqrt(k)

    @property
    def over_seeds(self) -> bool:
        return len(self.values) >= 3


def _where(summary: dict[str, Any]) -> str:
    """"GPU" when the run's learner computed on one (summary.json's devices), else "CPU"."""
    return "GPU" if str((summary.get("devices") or {}).get("learner", "cpu")).startswith("cuda") else "CPU"


def _read(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    from ..runlog import read_metrics

    if not (run_dir / "summary.json").is_file():
        return None
    return json.loads((run_dir / "summary.json").read_text()), read_metrics(run_dir / "metrics.jsonl")


def _evals(metrics: list[dict[str, Any]], phase: str | None = None, *,
           key: str = "eval/oracle_nll") -> list[dict[str, Any]]:
    """The evaluation records (those with `key`) of `phase`, or of every phase."""
    return [r for r in metrics if key in r and (phase is None or r["phase"] == phase)]


def collect(plan: Plan) -> dict[str, Outcome]:
    """Final NLL-oracle of Random, MLE after pretraining and every finished run, per seed,
    and NLL-test: the final generator's NLL of held-out oracle samples (read from the run's
    generator.pt, or its last checkpoint for runs from before generator.pt), which rises when a
    generator covers less of the oracle's sequences."""
    from ..roles import make_generator
    from ..tasks.synthetic import load_task
    from .frontier import load_run
    from .records import read_nll_test

    rows: dict[str, Outcome] = {}
    cfg = plan.base
    test = load_task(cfg.data).test  # what the runs' own evaluations score NLL-test on

    def nll_test(seed: int, run_dir: Path | None) -> float:
        # what the run ended with (generator.pt, or the last checkpoint of a run from before it
        # was written, or a record's nll_test.json); with no run, the learner's initial generator
        # for this seed
        if run_dir is not None and (kept := read_nll_test(run_dir)) is not None:
            return kept
        g = make_generator(cfg, seed) if run_dir is None else load_run(run_dir)[1]
        return g.nll(test)

    def add(name: str, seed: int, record: dict[str, Any], wall: float, nll: float, where: str = "",
            best: dict[str, Any] | None = None) -> None:
        o = rows.setdefault(name, Outcome([], [], []))
        o.extra.append({k: record.get(k, math.nan) for k in plan.rep.metrics})
        if best is not None:
            o.best.append(best["eval/oracle_nll"])
            o.best_at.append(best["step"])
        o.seeds.append(seed)
        o.values.append(record["eval/oracle_nll"])
        o.sample_ci.append(record.get("eval/oracle_nll_ci95", float("nan")))
        o.wall_s.append(wall)
        o.nll_test.append(nll)
        o.where.append(where)

    for seed in plan.rep.seeds:
        pre = _read(plan.read_dir(seed, "pretrain"))
        if pre is not None:  # absent while only standalone runs have trained
            evals = _evals(pre[1], "pretrain_g")
            if len(evals) > 1 and evals[1]["step"] == 1:  # the paper's Random: after the first epoch
                add("random", seed, evals[1], 0.0, evals[1]["eval/nll_test"])
            else:
                add("random", seed, evals[0], 0.0, nll_test(seed, None))
            add("mle_pretrained", seed, evals[-1], pre[0]["wall_time_s"],
                nll_test(seed, plan.read_dir(seed, "pretrain")), _where(pre[0]))
        for name in plan.runs_for(seed):
            run = _read(plan.read_dir(seed, name))
            if run is not None:
                evals = _evals(run[1], "adversarial")
                add(name, seed, evals[-1], run[0]["wall_time_s"], nll_test(seed, plan.read_dir(seed, name)),
                    _where(run[0]),
                    best=min(evals, key=lambda r: r["eval/oracle_nll"]))
    return rows


def write_report(plan: Plan, argv_text: str) -> Path:
    """docs/results/synthetic.md (and its figure) from the runs on disk, and from the records
    (reproduce.records) of those whose folders are gone; notes below the marker are kept, and a
    file written by hand (no marker) is kept whole below it. Then every run that has finished
    on disk is kept as a record."""
    from .records import keep_finished

    path = Path(plan.rep.report)
    if _data_source(plan) is None:  # a report of no runs would only erase what a finished one says
        raise ConfigError(f"no run of this reproduce file has started in {plan.rep.out_dir} yet, so there is "
                          f"nothing to report; {path} is left as it is. Train first (the same command without "
                          f"--report-only), or point reproduce.out_dir at the runs")
    figure = path.with_name(path.stem + "_figure2.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    # the runs are read (which can fail) before a file is written; the frontiers' plot, which
    # render writes, only where runs measured them
    if plan.base.data.corpus:
        text, nll_tests = render_text(plan, collect_text(plan), figure.name, argv_text), {}
    else:
        rows = collect(plan)
        text = render(plan, rows, figure.name, argv_text)
        nll_tests = {(seed, "pretrain" if name == "mle_pretrained" else name): value
                     for name, o in rows.items() if name != "random" for seed, value in zip(o.seeds, o.nll_test)}
    if not plan.base.data.corpus:
        plot_figure2(plan, figure)
    notes = ""
    if path.is_file():
        old = path.read_text(encoding="utf-8")
        notes = old.split(NOTES_MARKER, 1)[1] if NOTES_MARKER in old else "\n\n" + old
    path.write_text(text + "\n" + NOTES_MARKER + (notes or "\n"), encoding="utf-8")
    keep_finished(plan, nll_tests)
    return path


def render(plan: Plan, rows: dict[str, Outcome], figure: str, command: str) -> str:
    base, rep = plan.base, plan.rep
    seeds = ", ".join(map(str, rep.seeds))
    if rep.repeat and len(rep.seeds) > 1:
        seeds += f" (seeds after the first: {', '.join(rep.repeat)} only)"
    ci_how = (f"from the {base.train.eval_samples} evaluation samples of the run's last evaluation "
              f"(1.96 · sd of the per-sequence NLL / √n; for a mean over 2 seeds, the two combined), "
              f"or, marked ᵗ, a t-interval over 3 or more seeds")
    tc = base.train
    lines = [
        f"# {rep.title or 'The paper' + chr(39) + 's synthetic experiment: Table 1 and Figure 2'}",
        "",
        *([rep.intro.strip(), ""] if rep.intro else []),
        f"Data: {_data_source(plan) or 'no run yet'}.",
        "",
        f"Written by `{command}` from the runs in `{rep.out_dir}`{_records_too(plan)}. "
        f"Rerunning it continues unfinished "
        f"runs and rewrites this file above the notes marker.",
        "",
        f"Schedule: {tc.pretrain_g_epochs} MLE epochs, {tc.pretrain_d_rounds} × {tc.pretrain_d_epochs} "
        f"discriminator pretraining epochs, then {tc.adv_iterations} iterations of each method "
        + (f"(SeqGAN: {tc.g_steps} generator step, {tc.d_steps} × {tc.k_epochs} discriminator epochs an "
           f"iteration; the baselines: one epoch an iteration)" if base.train.method == "seqgan" else
           f"(an iteration as each method defines it; a run's own count is in its row)")
        + f". Seeds: {seeds}. NLL-oracle is the "
        f"oracle's mean per-token NLL of {tc.eval_samples} generator samples (lower: samples the "
        f"oracle finds likelier); ± is a 95% interval {ci_how}. NLL-test is the final generator's NLL "
        f"of held-out oracle samples, as many as the training sequences (lower: it covers more of what the oracle "
        f"generates); a generator that collapses onto a few likely sequences scores a low "
        f"NLL-oracle and a high NLL-test. 'ours' is each run's last evaluation; 'best evaluation' "
        f"is the lowest of all its evaluations (mean over seeds, and the iteration of each), shown "
        f"because the paper's 2016 code kept the best score it saw: a best of many noisy "
        f"evaluations is biased low, so it is never the run's result."
        + (f" Runs marked 'own pretraining' ({', '.join(f'`{n}`' for n in rep.standalone)}) pretrain from "
           f"scratch with their own config and schedule, not the shared pretraining." if rep.standalone else ""),
        "",
        f"| method | {''.join(f'{_column(k)} | ' for k in rep.columns)}paper | ours | ± 95% | per seed | "
        f"best evaluation (iteration) | NLL-test | {''.join(f'{k} | ' for k in rep.metrics)}our run | wall time |",
        "|---|" + "---|" * (len(rep.columns) + len(rep.metrics)) + "---|---|---|---|---|---|---|---|",
    ]

    def row(label: str, key: str, paper: float | None, run: str, cfg: Config | None = None) -> None:
        o = rows.get(key)
        ours = f"{o.mean:.3f}" if o else (_in_progress(plan, key) or "not run yet")
        ci = f"{o.ci:.3f}{'ᵗ' if o.over_seeds else ''}" if o else ""
        per_seed = " / ".join(f"{v:.3f}" for v in o.values) if o else ""
        wall = ""
        if o and any(o.wall_s):  # per seed, and where it ran when the seeds ran on different machines
            mixed = len(set(o.where)) > 1
            wall = " / ".join(_duration(w) + (f" ({h})" if mixed else "") for w, h in zip(o.wall_s, o.where))
        test = f"{sum(o.nll_test) / len(o.nll_test):.3f}" if o else ""
        best = (f"{sum(o.best) / len(o.best):.3f} ({' / '.join(map(str, o.best_at))})" if o and o.best else "")
        shown = "".join(f"{_shown(cfg or base, k)} | " for k in rep.columns)
        extra = "".join(f"{_metric_cell([e[k] for e in o.extra]) if o else ''} | " for k in rep.metrics)
        lines.append(f"| {label} | {shown}{paper if paper is not None else ''} | {ours} | {ci} | {per_seed} | {best} | "
                     f"{test} | {extra}{run} | {wall} |")

    row("Random", "random", PAPER["random"], "`pretrain`, after epoch 1 (the paper's Random)" if tc.eval_every == 1
        else "`pretrain`, before epoch 1 (the paper's Random is after one: evaluate every epoch for it)")
    row("MLE, after pretraining", "mle_pretrained", None, f"`pretrain`, epoch {tc.pretrain_g_epochs}")
    for name, cfg in plan.run_configs.items():
        kind = _kind(cfg)
        paper = rep.paper.get(name) if rep.paper else (PAPER.get(kind) if name == kind else None)
        row(_label(name, cfg), name, paper, _our_run(plan, name), cfg)
    from .verdict import against_baseline_section

    lines += ["", *verdict(plan, rows), "", *against_baseline_section(plan), *time_section(plan),
              f"![NLL-oracle against epochs]({figure})", "",
              f"Figure: NLL-oracle against epochs, like the paper's Figure 2: the shared MLE "
              f"pretraining (epochs 0–{tc.pretrain_g_epochs}), then each method "
              f"(seed {rep.seeds[0]}).", "", *frontier_section(plan, figure), *configs_section(plan)]
    return "\n".join(lines) + "\n"


def configs_section(plan: Plan) -> list[str]:
    return ["## Configs", "",
            f"Every run: `{plan.source}` (below, as read){_with_overrides(plan)}; each run changes "
            f"only the keys in the table's 'our run' column; `{plan.rep.out_dir}/seed<k>/<run>/config.yaml` "
            f"holds each run's whole config.", "", "```yaml", plan.source.read_text(encoding="utf-8").rstrip(), "```"]


# A corpus's metrics (TextTask.evaluate's, without "eval/") as the text report's columns, in order.
TEXT_METRICS = {**{f"bleu{n}": f"BLEU-{n}" for n in BLEU_ORDERS},
                **{f"self_bleu{n}": f"Self-BLEU-{n}" for n in BLEU_ORDERS}, "nll_test": "NLL-test"}


@dataclass
class TextOutcome:
    """One row of the corpus table: each seed's last evaluation of a run."""

    metrics: list[dict[str, float]] = field(default_factory=list)  # TEXT_METRICS keys, per seed
    wall_s: list[float] = field(default_factory=list)
    extra: list[dict[str, float]] = field(default_factory=list)  # reproduce.metrics, per seed

    def mean(self, key: str) -> float | None:
        values = [m[key] for m in self.metrics if key in m]
        return sum(values) / len(values) if values else None


def collect_text(plan: Plan) -> dict[str, TextOutcome]:
    """For a corpus: the untrained generator (the pretraining's evaluation before epoch 1), MLE
    after pretraining, and every finished run's last evaluation, per seed."""
    rows: dict[str, TextOutcome] = {}

    def add(name: str, record: dict[str, Any], wall: float) -> None:
        o = rows.setdefault(name, TextOutcome())
        o.metrics.append({k: record[f"eval/{k}"] for k in TEXT_METRICS if f"eval/{k}" in record})
        o.extra.append({k: record.get(k, math.nan) for k in plan.rep.metrics})
        o.wall_s.append(wall)

    for seed in plan.rep.seeds:
        pre = _read(plan.read_dir(seed, "pretrain"))
        if pre is not None:
            evals = _evals(pre[1], "pretrain_g", key="eval/nll_test")
            if evals and evals[0]["epoch"] == 0:
                add("random", evals[0], 0.0)
            add("mle_pretrained", evals[-1], pre[0]["wall_time_s"])
        for name in plan.runs_for(seed):
            run = _read(plan.read_dir(seed, name))
            if run is not None:
                add(name, _evals(run[1], "adversarial", key="eval/nll_test")[-1], run[0]["wall_time_s"])
    return rows


def render_text(plan: Plan, rows: dict[str, TextOutcome], figure: str, command: str) -> str:
    """The corpus report: each run's BLEU-2..5, Self-BLEU-2..5 and NLL-test, with the published
    numbers (reproduce.paper) in a row of their own under the run they belong to."""
    base, rep, tc = plan.base, plan.rep, plan.base.train
    heads = list(TEXT_METRICS.values())
    lines = [
        f"# {rep.title or 'The methods on ' + base.data.corpus}", "",
        f"Data: {_data_source(plan) or base.data.corpus + ' (no run yet)'}.", "",
        f"Written by `{command}` from the runs in `{rep.out_dir}`{_records_too(plan)}. "
        f"Rerunning it continues unfinished "
        f"runs and rewrites this file above the notes marker.", "",
        f"Schedule: {tc.pretrain_g_epochs} MLE epochs, {tc.pretrain_d_rounds} × {tc.pretrain_d_epochs} "
        f"discriminator pretraining epochs, then {tc.adv_iterations} iterations of each method, unless "
        f"its 'our run' says otherwise. Seeds: {', '.join(map(str, rep.seeds))}. BLEU-n: each of "
        f"{tc.eval_samples} generated sentences against the test split's sentences (at most "
        f"`data.test_sample`), averaged, as Texygen scores it (nltk's sentence_bleu, smoothing method 1; "
        f"higher: closer to the held-out text); Self-BLEU-n: each against the others (lower: more "
        f"diverse); NLL-test: the generator's mean NLL per token of the test sentences. 'ours' is each "
        f"run's last evaluation (the mean over seeds); a 'published' row gives the numbers "
        f"`reproduce.paper` sets for the run above it (the file's comments name their sources; blank: "
        f"not published). A toolkit's BLEU depends on its references and its sample count, so the "
        f"published rows are a guide, not a bar."
        + (f" Runs marked 'own pretraining' ({', '.join(f'`{n}`' for n in rep.standalone)}) pretrain from "
           f"scratch with their own config and schedule." if rep.standalone else ""), "",
        f"| method | {''.join(f'{_column(k)} | ' for k in rep.columns)}numbers | {' | '.join(heads)} | "
        f"{''.join(f'{k} | ' for k in rep.metrics)}our run | wall time |",
        "|---|---|" + "---|" * (len(rep.columns) + len(heads) + len(rep.metrics)) + "---|---|",
    ]

    def values(get) -> str:
        return " | ".join(_three(get(k)) for k in TEXT_METRICS)

    def row(label: str, key: str, run: str, cfg: Config | None = None) -> None:
        shown = "".join(f"{_shown(cfg or base, k)} | " for k in rep.columns)
        o = rows.get(key)
        if o is None:
            state = _in_progress(plan, key) or "not run yet"
            lines.append(f"| {label} | {shown}ours | {state}{' |' * (len(TEXT_METRICS) + len(rep.metrics))} {run} |  |")
        else:
            wall = " / ".join(_duration(w) for w in o.wall_s if w)
            extra = "".join(f"{_metric_cell([e[k] for e in o.extra])} | " for k in rep.metrics)
            lines.append(f"| {label} | {shown}ours | {values(o.mean)} | {extra}{run} | {wall} |")
        if (published := rep.paper.get(key)) is not None:
            lines.append(f"| {label} | {shown}published | {values(published.get)} |{' |' * len(rep.metrics)}  |  |")

    row("Untrained generator", "random", "`pretrain`, before epoch 1")
    row("MLE, after pretraining", "mle_pretrained", f"`pretrain`, epoch {tc.pretrain_g_epochs}")
    for name, cfg in plan.run_configs.items():
        row(_label(name, cfg), name, _our_run(plan, name), cfg)
    lines += ["", *time_section(plan), *frontier_section(plan, figure), *configs_section(plan)]
    return "\n".join(lines) + "\n"


def _data_source(plan: Plan) -> str | None:
    """The task's one-line source, from whichever run has started (load_plan checks that every
    run trains on the same task); None before any has."""
    seed = plan.rep.seeds[0]
    found = (plan.read_dir(seed, name) / "data_source.txt" for name in ("pretrain", *plan.run_configs))
    return next((f.read_text().strip() for f in found if f.is_file()), None)


def _records_too(plan: Plan) -> str:
    """", and the records in ... (those whose folders are gone)" when the report read any."""
    seeds = plan.rep.seeds
    if not plan.rep.records or not any(plan.read_dir(seed, name) != plan.folder(seed) / name
                                       for seed in seeds for name in ("pretrain", *plan.runs_for(seed))):
        return ""
    return f" and the records in `{plan.rep.records}` (runs whose folders are not there)"


def _label(name: str, cfg: Config) -> str:
    """A run's method column: the method's name, and the run's when they differ."""
    kind = _kind(cfg)
    return PAPER_LABELS.get(kind, name) + (f" (`{name}`)" if name != kind else "")


def _our_run(plan: Plan, name: str) -> str:
    """The 'our run' column: what the run changes from the shared sections, or its own config."""
    how = (_describe(plan.run_configs[name], plan.base) if not plan.standalone(name)
           else f"the pretraining of `{plan.rep.pretrained_by[name]}`: " + _standalone(plan, name)
           if name in plan.rep.pretrained_by else "own pretraining: " + _standalone(plan, name))
    return f"`{name}`: {how}"


def _metric_cell(values: list[float]) -> str:
    """A reproduce.metrics cell: the mean over the seeds that report it, ± a t-interval over 3
    or more of them; blank when none does (Random and pretraining rows of a method's own metric)."""
    vs = [v for v in values if not math.isnan(v)]
    if not vs:
        return ""
    mean = sum(vs) / len(vs)
    if len(vs) < 3:
        return f"{mean:.3f}"
    sd = math.sqrt(sum((v - mean) ** 2 for v in vs) / (len(vs) - 1))
    return f"{mean:.3f} ± {T_975.get(len(vs) - 1, 1.96) * sd / math.sqrt(len(vs)):.3f}ᵗ"


def _three(x: float | None) -> str:
    """.745 for a BLEU (as the papers print them), 5.585 for an NLL; blank when missing."""
    if x is None:
        return ""
    return f"{x:.3f}".removeprefix("0") if 0 <= x < 1 else f"{x:.3f}"


def frontier_section(plan: Plan, figure: str) -> list[str]:
    """The runs' quality-diversity frontiers (first seed), where measured: a table, a plot
    beside the report, and each run's NLL-oracle against the baseline's at the same NLL-test."""
    from .frontier import frontier_gap, frontier_markdown, plot_frontier, read_frontier

    frontiers = {}
    for name in plan.run_configs:
        if (path := plan.read_dir(plan.rep.seeds[0], name) / "frontier.csv").is_file():
            frontiers[name] = next(iter(read_frontier(path).values()))
    if not frontiers:
        return []
    png = figure.replace("_figure2.png", "_frontier.png")
    plot_frontier(frontiers, Path(plan.rep.report).with_name(png), title="the runs' frontiers")
    how = (f"its samples at temperature τ scored by the oracle (NLL-oracle: quality), and its NLL of "
           f"held-out oracle samples under the same tempered softmax (NLL-test: coverage). A lower "
           f"temperature buys any generator a better NLL-oracle at a worse NLL-test; a method beats "
           f"`{plan.rep.baseline}` only where its curve lies below the baseline's."
           if not plan.base.data.corpus else
           f"its samples at temperature τ scored by BLEU against the test split (quality) and Self-BLEU "
           f"among themselves (lower: more diverse), and its NLL-test under the same tempered softmax. A "
           f"lower temperature buys any generator a higher BLEU at a higher Self-BLEU; a method beats "
           f"`{plan.rep.baseline}` only where it has the higher BLEU at the same Self-BLEU.")
    lines = ["## Quality against diversity: each run's frontier over sampling temperatures", "",
             f"`python run.py evaluate` of each run's final generator (seed {plan.rep.seeds[0]}): {how}", "",
             frontier_markdown(frontiers).rstrip(), "", f"![the frontiers]({png})", ""]
    unfinished = [f"`{name}` at iteration {done[-1]['step']}" for name in frontiers
                  if (done := _unfinished(plan, name))]
    if unfinished:
        lines += [f"Unfinished runs are measured where they stopped: {', '.join(unfinished)}.", ""]
    base = frontiers.get(plan.rep.baseline) if not plan.base.data.corpus else None  # gaps in NLL-oracle
    for name, points in frontiers.items():
        gaps = frontier_gap(points, base) if base is not None and name != plan.rep.baseline else []
        if gaps:
            lines.append(f"- `{name}`: NLL-oracle {min(g for _, g in gaps):+.3f} to {max(g for _, g in gaps):+.3f} "
                         f"against `{plan.rep.baseline}` at the same NLL-test (τ = "
                         f"{', '.join(f'{t:g}' for t, _ in gaps)}; negative: better samples at equal coverage, "
                         f"which no temperature gives `{plan.rep.baseline}`).")
    return lines + [""]


def verdict(plan: Plan, rows: dict[str, Outcome]) -> list[str]:
    """The bar, checked from the numbers for every SeqGAN run: NLL-oracle <= BAR, and below
    the baseline by a margin the 95% intervals support. The baseline is taken over the run's
    own seeds, so a run of one seed is not compared with a mean over several."""
    out = []
    bars = plan.rep.bars or {name: BAR for name, cfg in plan.run_configs.items() if _kind(cfg) == "seqgan"}
    for name, cfg in plan.run_configs.items():
        t = rows.get(name)
        if name not in bars or t is None or plan.rep.baseline not in rows:
            continue
        bar = bars[name]
        b = rows[plan.rep.baseline].on(t.seeds)
        if len(b.values) < len(t.values):
            continue  # the baseline has not finished on every seed of this run yet
        margin, joint = b.mean - t.mean, math.hypot(t.ci, b.ci)
        over = f" (seed{'s' if len(t.seeds) > 1 else ''} {', '.join(map(str, t.seeds))})"
        published = plan.rep.paper.get(name) if plan.rep.paper else PAPER.get(_kind(cfg))
        setting = f"rollout.update_rate={cfg.rollout.update_rate}" if _kind(cfg) == "seqgan" else f"train.method={cfg.train.method}"
        out.append(f"- `{name}` ({setting}){over}: {t.mean:.3f} ± {t.ci:.3f}, "
                   f"{'at or below' if t.mean <= bar else 'above'} the bar of {bar}"
                   f"{f' (paper: {published})' if published is not None else ''}; "
                   f"{abs(margin):.3f} {'below' if margin > 0 else 'above'} "
                   f"`{plan.rep.baseline}` on the same seeds ({b.mean:.3f}), whose difference has a 95% "
                   f"interval of ±{joint:.3f}: the margin is "
                   f"{'supported' if margin > joint else '**not** supported'}."
                   + (f" {plan.rep.paper_notes[name]}" if name in plan.rep.paper_notes else ""))
    if out:
        return out
    held = ", ".join(f"`{n}` <= {b}" for n, b in bars.items()) or f"a SeqGAN run <= {BAR}"
    notes = "".join(f" `{n}`: {note}" for n, note in plan.rep.paper_notes.items())
    return [f"The bar ({held}, below `{plan.rep.baseline}`) is checked once they finish.{notes}"]


def time_section(plan: Plan) -> list[str]:
    """Where each run's adversarial iteration goes (first seed): the mean seconds of the parts
    its algorithm logs, over the iterations run so far."""
    from ..runlog import read_metrics

    rows = []
    for name in plan.run_configs:
        path = plan.read_dir(plan.rep.seeds[0], name) / "metrics.jsonl"
        records = [r for r in read_metrics(path) if r.get("phase") == "adversarial" and "time/iteration_s" in r] \
            if path.is_file() else []
        if records:
            rows.append((name, len(records), {k: sum(r.get(k, 0.0) for r in records) / len(records) for k in TIME_PARTS}))
    if not rows:
        return []
    lines = ["## Where an iteration's time goes", "",
             f"Mean seconds of each part of an adversarial iteration, seed {plan.rep.seeds[0]} (the parts each "
             f"algorithm logs; evaluation is not in them):", "",
             "| run | iterations | " + " | ".join(TIME_PARTS.values()) + " |",
             "|---|---|" + "---|" * len(TIME_PARTS)]
    for name, n, means in rows:
        lines.append(f"| `{name}` | {n} | " + " | ".join(f"{means[k]:.3g}" for k in TIME_PARTS) + " |")
    return lines + [""]


def _column(key: str) -> str:
    """A config key's column heading: T for the length, else the key's name in words."""
    return {"data.seq_len": "T", "relaxed.temperature_max": "β max"}.get(
        key, key.partition(".")[2].replace("_", " "))


def _shown(cfg: Config, key: str) -> Any:
    """A config value for the table; a key of a method's own section (config.METHOD_SECTIONS) only
    for the runs whose method reads it."""
    from ..algorithms import load_algorithm
    from ..config import METHOD_SECTIONS, _reads

    section, _, name = key.partition(".")
    reads = getattr(load_algorithm(cfg.train.method), "reads", None)
    if section in METHOD_SECTIONS and reads is not None and not _reads(reads, key):
        return "–"
    return getattr(getattr(cfg, section), name)


def _standalone(plan: Plan, name: str) -> str:
    """How a standalone run's config was made: its file (if any) and the entry's overrides."""
    entry = dict(plan.rep.runs.get(name) or {})
    source = entry.pop("config", None)
    changes = ", ".join(f"{k}={v}" for k, v in entry.items())
    return " with ".join(x for x in (f"`{source}`" if source else "the shared sections", changes) if x)


def _in_progress(plan: Plan, name: str) -> str | None:
    """How far a run that started but has not finished has got, on the first seed: its last
    adversarial iteration and last evaluation (a long run may span several sessions), or, still
    pretraining (a standalone run, or the shared pretraining of the MLE-after-pretraining row),
    the step of its pretraining."""
    folder = "pretrain" if name == "mle_pretrained" else name
    records = _records(plan, folder)
    if not records:
        return None
    if adversarial := [r for r in records if r.get("phase") == "adversarial"]:
        evals = _evals(adversarial)
        last = f"; {evals[-1]['eval/oracle_nll']:.3f} at iteration {evals[-1]['step']}" if evals else ""
        return f"in progress: iteration {adversarial[-1]['step']} of {plan.run_configs[name].train.adv_iterations}{last}"
    tc = (plan.base if folder == "pretrain" else plan.run_configs[name]).train
    last = records[-1]
    if last["phase"] == "pretrain_d" and last["epoch"] >= tc.pretrain_g_epochs:  # not LeakGAN's interleaved rounds
        return f"in progress: pretraining D, round {last['step']} of {tc.pretrain_d_rounds}"
    return f"in progress: pretraining G, epoch {last['epoch']} of {tc.pretrain_g_epochs}"


def _records(plan: Plan, folder: str) -> list[dict[str, Any]]:
    """The metrics of `folder` (a run, or "pretrain") on the first seed when it started and has
    not finished; else []."""
    from ..runlog import read_metrics

    run_dir = plan.folder(plan.rep.seeds[0]) / folder
    if folder not in ("pretrain", *plan.run_configs) or (run_dir / "summary.json").is_file() \
            or not (run_dir / "metrics.jsonl").is_file():
        return []
    return read_metrics(run_dir / "metrics.jsonl")


def _unfinished(plan: Plan, name: str) -> list[dict[str, Any]]:
    """The adversarial records of run `name` on the first seed when it started and has not
    finished; else []."""
    return [r for r in _records(plan, name) if r.get("phase") == "adversarial"]


def _with_overrides(plan: Plan) -> str:
    return f", with `{' '.join(plan.overrides)}` from the command line" if plan.overrides else ""


def _kind(cfg: Config) -> str:
    if cfg.train.method != "seqgan":
        return cfg.train.method
    return {"discriminator": "seqgan", "bleu": "pg_bleu"}.get(cfg.rollout.reward, cfg.rollout.reward)


def _describe(cfg: Config, base: Config) -> str:
    have, was = cfg.to_dict(), base.to_dict()
    diff = [f"{s}.{k}={v}" for s, vals in have.items() for k, v in vals.items()
            if v != was[s][k] and f"{s}.{k}" != "run.seed"]
    return ", ".join(diff) or "the config as is"


def _duration(seconds: float) -> str:
    m = int(seconds // 60)
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min {int(seconds % 60):02d} s"


def figure2_curves(plan: Plan) -> dict[str, tuple[list[int], list[float]]]:
    """label -> (epochs, NLL-oracle) on the first seed: the shared MLE pretraining, then every
    run from its end; a run still in progress is drawn as far as it has got."""
    from ..runlog import read_metrics

    seed = plan.rep.seeds[0]
    pre = _read(plan.read_dir(seed, "pretrain"))
    curves, start = {}, None  # no shared pretraining while only standalone runs have trained
    if pre is not None:
        ev = [r for r in _evals(pre[1]) if r["epoch"] > 0]
        curves["MLE pretraining"] = ([r["epoch"] for r in ev], [r["eval/oracle_nll"] for r in ev])
        start = (ev[-1]["epoch"], ev[-1]["eval/oracle_nll"])
    for name in plan.run_configs:
        run_dir = plan.read_dir(seed, name)
        if not (run_dir / "metrics.jsonl").is_file():
            continue
        label = name if (run_dir / "summary.json").is_file() else f"{name} (in progress)"
        if plan.standalone(name):  # its own pretraining, from epoch 0
            ev = [r for r in _evals(read_metrics(run_dir / "metrics.jsonl")) if r["epoch"] > 0]
            donor = plan.rep.pretrained_by.get(name)
            if ev:
                curves[f"{label}, {f'from the pretraining of {donor}' if donor else 'own pretraining'}"] = (
                    [r["epoch"] for r in ev], [r["eval/oracle_nll"] for r in ev])
            continue
        ev = _evals(read_metrics(run_dir / "metrics.jsonl"), "adversarial")
        if ev and start is not None:
            curves[label] = ([start[0]] + [r["epoch"] for r in ev], [start[1]] + [r["eval/oracle_nll"] for r in ev])
    return curves


def plot_figure2(plan: Plan, png: Path) -> None:
    """NLL-oracle against epochs, pretraining then every run, for the first seed. The y range
    is the MLE plateau's neighbourhood; a run that falls far below it (a collapse) is cut off,
    and its legend says where it ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = figure2_curves(plan)
    if not curves:  # no run has evaluated yet: an empty plot would replace a real one
        return
    fig, ax = plt.subplots(figsize=(8, 4.8))
    plateau = next(iter(curves.values()))[1][-1]  # the shared pretraining's end, where there is one
    kept = [y for _, ys in curves.values() for y in ys if y > plateau - 1.0]
    lo, hi = min(kept) - 0.05, max(kept) + 0.05
    for name, (xs, ys) in curves.items():
        label = name if ys[-1] >= lo else f"{name} (falls below the plot: {ys[-1]:.2f} at the end)"
        ax.plot(xs, ys, marker=".", label=label, color="black" if name == "MLE pretraining" else None)
    ax.set_ylim(lo, hi)
    ax.legend(fontsize=8)
    ax.axvline(plan.base.train.pretrain_g_epochs, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel("epoch (MLE pretraining, then one per iteration)")
    ax.set_ylabel("NLL-oracle (nats per token)")
    ax.set_title("Synthetic task, the paper's oracle")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
