"""The paper's synthetic experiment, Table 1 and Figure 2, as one resumable command.

    python run.py reproduce --config configs/reproduce_synthetic.yaml [--background]

A reproduce file is a config (shared by every run) plus a `reproduce:` section naming the
runs, each a few overrides of that config:

    reproduce:
      runs:
        mle: {train.method: mle}
        pg_bleu: {rollout.reward: bleu}
        seqgan: {}

For every seed, the generator and discriminator are pretrained once into
`<out_dir>/seed<k>/pretrain` (Random is its evaluation before the first epoch, "MLE after
pretraining" its last); every run then starts from that checkpoint and trains
adv_iterations iterations into `<out_dir>/seed<k>/<name>`. A run may pretrain D its own way
(train.pretrain_d_rounds / pretrain_d_epochs, e.g. the paper's 50 x 3): it starts from the
shared generator pretraining, before D's, and pretrains its own D. A run named in
`standalone` (another model, e.g. LeakGAN's) pretrains from scratch in its own folder; its
entry may name a config file (`config: configs/leakgan_oracle.yaml`) to start from instead of
the shared sections, and may change any key; one named in `pretrained_by` starts from another
standalone run's finished pretraining (the same model, only the adversarial phase differs). A run
that has finished is
skipped, one that was interrupted resumes from its newest checkpoint, so the command can be
stopped and started again at any point. At the end (and with `--report-only`) it writes
the report: a table beside the paper's with 95% confidence intervals, a plot like the
paper's Figure 2, the wall time of each run, and the configs (on a corpus, BLEU and Self-BLEU
beside the published ones). `--runs` naming only standalone runs skips the shared pretraining.
With `--jobs N` every seed's pretraining and runs are jobs, N at a time, each in its own process.
With `--stack-seeds` every seed's pretraining comes first, then each run with all its seeds as
one stacked model (stacked_runs.py), where the run's method allows it.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..config import (ADVERSARIAL, LENGTH, OUTPUT, PRETRAINING, SHAPE, Config, ConfigError, all_keys, keys_with, load_config,
                      load_with_section, resolve, save_config, set_key, validate)

# Keys that may differ between a run on disk and the reproduce file: where and how much is
# written, and the length (a finished run is extended to a longer adv_iterations).
TRIVIA = frozenset(keys_with(OUTPUT, LENGTH))
# Pretraining keys a run may change: it then pretrains its own D from the shared pretrained G.
OWN_D_PRETRAINING = ("train.pretrain_d_rounds", "train.pretrain_d_epochs")
# ... and for the shared pretraining, the adversarial phase's settings too.
UNCHECKED = TRIVIA | frozenset(keys_with(ADVERSARIAL))
SHARED_PRETRAINING = frozenset(keys_with(SHAPE, PRETRAINING))  # what the runs on one pretraining share


def _default_temperatures() -> tuple[float, ...]:
    from .frontier import DEFAULT_TEMPERATURES  # imported when needed: it brings torch

    return DEFAULT_TEMPERATURES


@dataclass
class ReproduceConfig:
    """The `reproduce:` section of a reproduce file."""

    out_dir: str = "runs/reproduce"
    report: str = "docs/results/synthetic.md"
    seeds: list[int] = field(default_factory=lambda: [0])
    repeat: list[str] = field(default_factory=list)  # runs trained on every seed; empty: all
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    baseline: str = "mle"   # the run every SeqGAN run must beat: MLE as long as the adversarial phase
    frontier: list[str] = field(default_factory=list)  # runs whose quality-diversity frontier is
    # measured when they finish (`run.py evaluate`, into their folder) and shown in the report
    temperatures: list[float] = field(default_factory=lambda: list(_default_temperatures()))
    standalone: list[str] = field(default_factory=list)  # runs with their own pretraining
    pretrained_by: dict[str, str] = field(default_factory=dict)  # a standalone run -> another whose
    # pretraining it starts from (the same model and pretraining; only adversarial keys differ)
    title: str = ""                   # the report's heading; empty: the paper's Table 1
    paper: dict[str, Any] = field(default_factory=dict)  # published NLL-oracle by run (empty: the
    # paper's Table 1 by method); on a corpus, each run's published metrics ({bleu2: .593, ...})
    bars: dict[str, float] = field(default_factory=dict)   # runs held to a bar (NLL-oracle at or
    # below it, and below the baseline); empty: every SeqGAN run to 8.74
    columns: list[str] = field(default_factory=list)       # config keys shown in the table
    paper_notes: dict[str, str] = field(default_factory=dict)  # a sentence printed beside a run's
    # bar and published number (e.g. that it was measured on another oracle)
    intro: str = ""                   # a paragraph under the report's heading (e.g. a scaled-down
    # tier's scaling rules)
    beta_min: dict[str, float] = field(default_factory=dict)  # the least last inverse temperature β
    # of a relaxed run for its regime check: the range its paper operates in
    paper_schedule: dict[str, str] = field(default_factory=dict)  # a run's paper's schedule, in words
    paper_iterations: dict[str, int] = field(default_factory=dict)  # its paper's adversarial
    # iterations: the report shows the fraction of them that ran
    control: str = ""   # a run with no learning signal (rollout.reward constant): each run on the
    # shared pretraining is held to it too; one that beats the baseline but not it only sharpens
    controls: dict[str, str] = field(default_factory=dict)  # a run -> its own no-signal control, in
    # place of `control` (e.g. LeakGAN's, trained from LeakGAN's pretraining with every reward 1)
    metrics: list[str] = field(default_factory=list)  # more of the last evaluation's metrics as
    # columns (mean over seeds, a t-interval over 3 or more), e.g. MaskGAN's eval/infill_oracle_nll
    records: str = ""   # a folder (e.g. beside the report) where writing the report keeps each finished
    # run's record: its text without weights (records.py), so the report can be written again
    # where the run folders are gone; empty: none kept


@dataclass
class Plan:
    base: Config
    rep: ReproduceConfig
    source: Path                                # the reproduce file
    overrides: list[str] = field(default_factory=list)  # key=value from the command line
    run_configs: dict[str, Config] = field(default_factory=dict)

    def folder(self, seed: int) -> Path:
        return Path(self.rep.out_dir) / f"seed{seed}"

    def pretrain_config(self, seed: int) -> Config:
        cfg = copy.deepcopy(self.base)
        cfg.train.adv_iterations = 0
        cfg.run.seed = seed
        return cfg

    def runs_for(self, seed: int) -> list[str]:
        """The runs trained with `seed`: all on the first seed, `repeat` (or all) on the others."""
        if seed == self.rep.seeds[0] or not self.rep.repeat:
            return list(self.run_configs)
        return [name for name in self.run_configs if name in self.rep.repeat]

    def select(self, names: list[str]) -> list[str]:
        """`names` checked against the file's runs (for --runs)."""
        unknown = [n for n in names if n not in self.run_configs]
        if unknown:
            raise ConfigError(f"--runs {','.join(names)}: {', '.join(map(repr, unknown))} is not a run of "
                              f"{self.source}; its runs are {', '.join(self.run_configs)}")
        return names

    def select_seeds(self, text: str) -> list[int]:
        """`text` ("0,1") checked against the file's seeds (for --seeds)."""
        try:
            seeds = [int(x) for x in text.split(",")]
        except ValueError:
            raise ConfigError(f"--seeds {text}: give seeds as integers, e.g. --seeds 0,1") from None
        unknown = [s for s in seeds if s not in self.rep.seeds]
        if unknown:
            raise ConfigError(f"--seeds {text}: {unknown[0]} is not a seed of {self.source}; its seeds are "
                              f"{', '.join(map(str, self.rep.seeds))}")
        return seeds

    def standalone(self, name: str) -> bool:
        """Whether run `name` pretrains on its own, from scratch (reproduce.standalone)."""
        return name in self.rep.standalone

    def own_d_pretraining(self, name: str) -> bool:
        """Whether run `name` pretrains D differently from the shared pretraining."""
        run, base = self.run_configs[name].train, self.base.train
        return any(getattr(run, k.split(".")[1]) != getattr(base, k.split(".")[1]) for k in OWN_D_PRETRAINING)

    def config(self, name: str, seed: int) -> Config:
        cfg = copy.deepcopy(self.run_configs[name])
        cfg.run.seed = seed
        return cfg

    def read_dir(self, seed: int, name: str) -> Path:
        """The folder the report reads run `name` (or "pretrain") of `seed` from: its folder in
        out_dir when it has finished there; else its record (reproduce.records) when one was kept
        with this file's config; else its folder in out_dir (unfinished, or not started)."""
        from .records import usable_record

        here = self.folder(seed) / name
        if (here / "summary.json").is_file() or not self.rep.records:
            return here
        record = usable_record(self, seed, name)
        return record if record is not None else here


def load_plan(path: Path, overrides: list[str] = ()) -> Plan:
    """Read a reproduce file; every error names the key and comes before any training."""
    base, rep, where, given = load_with_section(path, "reproduce", ReproduceConfig, overrides, what="reproduce",
                                                hint="runs, seeds, out_dir, report")
    raw = copy.deepcopy(base)  # each run takes its own method's defaults
    resolve(base, given)
    if not rep.runs or not isinstance(rep.runs, dict):
        raise ConfigError(f"{where}reproduce.runs is empty; name at least one run (e.g. seqgan: {{}})")
    if not rep.seeds or not all(isinstance(s, int) for s in rep.seeds):
        raise ConfigError(f"{where}reproduce.seeds must be a list of integers, got {rep.seeds!r}")
    plan = Plan(base, rep, Path(path), list(overrides))
    for name in rep.standalone:
        if name not in rep.runs:
            raise ConfigError(f"{where}reproduce.standalone: '{name}' is not one of reproduce.runs")
    for name, changes in rep.runs.items():
        if name == "pretrain" or not str(name).isidentifier():
            raise ConfigError(f"{where}reproduce.runs: '{name}' cannot name a run (use letters, digits, _)")
        changes = dict(changes or {})
        own = name in rep.standalone
        cfg = copy.deepcopy(raw)
        if "config" in changes:
            if not own:
                raise ConfigError(f"{where}reproduce.runs.{name}: 'config' is for a run in reproduce.standalone "
                                  f"(which pretrains on its own); the others share the file's sections")
            cfg = load_config(Path(changes.pop("config")), [o for o in overrides if not o.startswith("reproduce.")])
        for key, value in changes.items():
            if not own and _changes_shared_pretraining(key):
                raise ConfigError(f"{where}reproduce.runs.{name}: {key} changes the generator's "
                                  f"pretraining, which every run shares; set it in the config sections "
                                  f"instead (a run may change only {' and '.join(OWN_D_PRETRAINING)}, "
                                  f"unless reproduce.standalone names it)")
            set_key(cfg, key, value, where=f"{where}reproduce.runs.{name}: ")
        # keys the shared sections set for other runs' methods are not this run's to refuse; its own are
        if "config" in (rep.runs[name] or {}):  # load_config gave its file's method its defaults
            validate(cfg, check_reads=set(changes))
        else:  # a run on the shared pretraining takes its method's defaults for the other keys only
            shared = set() if own else SHARED_PRETRAINING
            resolve(cfg, given | set(changes) | shared, check_reads=set(changes))
        if own and (diff := [k for k, v in cfg.data.__dict__.items() if getattr(base.data, k) != v]):
            raise ConfigError(f"{where}reproduce.runs.{name}: data.{diff[0]} differs from the shared sections' "
                              f"({getattr(cfg.data, diff[0])!r} against {getattr(base.data, diff[0])!r}): every run "
                              f"of a report trains and is scored on the same task")
        plan.run_configs[name] = cfg
    for key in ("paper", "bars", "paper_notes", "beta_min", "paper_schedule", "paper_iterations"):
        for name in getattr(rep, key):
            if name not in rep.runs:
                raise ConfigError(f"{where}reproduce.{key}: '{name}' is not one of reproduce.runs")
    for name, n in rep.paper_iterations.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{where}reproduce.paper_iterations.{name}: give a number of iterations >= 1, not {n!r}")
    _check_paper(rep, bool(base.data.corpus), where)
    for key in rep.metrics:
        if not isinstance(key, str) or not key.startswith("eval/"):
            raise ConfigError(f"{where}reproduce.metrics: {key!r} is not an evaluation metric (they start with "
                              f"eval/, e.g. eval/infill_oracle_nll)")
    for key in rep.columns:
        if key not in all_keys(base):
            raise ConfigError(f"{where}reproduce.columns: '{key}' is not a config key")
    for name in rep.repeat:
        if name not in rep.runs:
            raise ConfigError(f"{where}reproduce.repeat: '{name}' is not one of reproduce.runs")
    for name, donor in rep.pretrained_by.items():
        _check_pretrained_by(plan, name, donor, where)
    if rep.control and (rep.control not in rep.runs or rep.control not in rep.frontier):
        raise ConfigError(f"{where}reproduce.control '{rep.control}' must be one of reproduce.runs and of "
                          f"reproduce.frontier (its frontier is what the runs are held to)")
    for name, control in rep.controls.items():
        if name not in rep.runs:
            raise ConfigError(f"{where}reproduce.controls: '{name}' is not one of reproduce.runs")
        if control not in rep.runs or control not in rep.frontier or control == name:
            raise ConfigError(f"{where}reproduce.controls.{name}: '{control}' must be another run, one of "
                              f"reproduce.runs and of reproduce.frontier (its frontier is what {name} is held to)")
    if rep.baseline not in rep.runs:
        raise ConfigError(f"{where}reproduce.baseline '{rep.baseline}' is not one of reproduce.runs")
    for name in rep.frontier:
        if name not in rep.runs:
            raise ConfigError(f"{where}reproduce.frontier: '{name}' is not one of reproduce.runs")
    from .frontier import check_temperatures

    try:
        check_temperatures(rep.temperatures)
    except ConfigError as exc:
        raise ConfigError(f"{where}reproduce.temperatures: {exc}") from None
    return plan


def _check_pretrained_by(plan: Plan, name: str, donor: str, where: str) -> None:
    """reproduce.pretrained_by: both runs standalone, trained on the same seeds, and the same in
    every key but the adversarial phase's (and the length and output keys)."""
    rep, key = plan.rep, f"{where}reproduce.pretrained_by.{name}"
    if name not in rep.standalone or donor not in rep.standalone or donor in rep.pretrained_by:
        raise ConfigError(f"{key}: both '{name}' and '{donor}' must be in reproduce.standalone, and "
                          f"'{donor}' must pretrain itself (not be in reproduce.pretrained_by)")
    if rep.repeat and name in rep.repeat and donor not in rep.repeat:
        raise ConfigError(f"{key}: '{name}' is in reproduce.repeat and '{donor}', whose pretraining it "
                          f"starts from, is not; add '{donor}'")
    ours, theirs = plan.run_configs[name].to_dict(), plan.run_configs[donor].to_dict()
    for section, values in ours.items():
        for k, v in values.items():
            if f"{section}.{k}" not in UNCHECKED and f"{section}.{k}" != "run.seed" and theirs[section][k] != v:
                raise ConfigError(f"{key}: '{name}' has {section}.{k}={v!r} and '{donor}' "
                                  f"{theirs[section][k]!r}: a run starts from another's pretraining only "
                                  f"when they differ in the adversarial phase alone")


def _check_paper(rep: ReproduceConfig, corpus: bool, where: str) -> None:
    """Published numbers: one NLL-oracle a run on the synthetic task; on a corpus, a mapping of
    the text metrics the report shows (no bar: BLEU depends on each toolkit's references)."""
    from .report import TEXT_METRICS

    for name, value in rep.paper.items():
        key = f"{where}reproduce.paper.{name}"
        if not corpus:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{key}: give the published NLL-oracle as a number, e.g. {name}: 8.736")
            continue
        if not isinstance(value, dict) or not value:
            raise ConfigError(f"{key}: on a corpus, give the published metrics by name, e.g. "
                              f"{name}: {{bleu2: 0.745, self_bleu2: 0.95}} (names: {', '.join(TEXT_METRICS)})")
        for metric, number in value.items():
            if metric not in TEXT_METRICS:
                raise ConfigError(f"{key}.{metric}: not a metric the report shows; use one of "
                                  f"{', '.join(TEXT_METRICS)}")
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise ConfigError(f"{key}.{metric}: {number!r} is not a number")
    if corpus and rep.bars:
        raise ConfigError(f"{where}reproduce.bars: a corpus report has no bar (BLEU depends on each toolkit's "
                          f"references and sample count); remove it, and give the published numbers in "
                          f"reproduce.paper")


def _changes_shared_pretraining(key: str) -> bool:
    if key in OWN_D_PRETRAINING:
        return False
    return key.partition(".")[2].startswith("pretrain_") or key.startswith(("data.", "generator.emb",
                                                                            "generator.hidden"))


# --------------------------------------------------------------------------- running

def run_plan(plan: Plan, spec, *, only: list[str] | None = None, seeds: list[int] | None = None,
             jobs: int = 1, child_args: list[str] = (), pretrain_only: bool = False,
             stack_seeds: bool = False) -> list[str]:
    """Pretrain each seed once, then every run (or those in `only`) from it; finished runs
    are skipped. With `jobs` > 1 every seed's pretraining and runs train side by side, each in
    its own process (`child_args`: the command's options for them); `pretrain_only`: the
    pretraining alone; `stack_seeds`: each run's seeds as one stacked model, after every
    seed's pretraining. Returns the runs that failed."""
    seeds = [s for s in plan.rep.seeds if seeds is None or s in seeds]
    if stack_seeds and not pretrain_only and jobs == 1:
        return _train_stacked_seeds(plan, seeds, only)
    todos = {seed: plan_todo(plan, seed, only) for seed in seeds}
    if jobs > 1:
        return _train_side_by_side(plan, todos, jobs, child_args, pretrain_only=pretrain_only,
                                   stack_seeds=stack_seeds)
    total = sum(1 + (0 if pretrain_only else len(todo)) for todo in todos.values())
    done = 0
    for seed, todo in todos.items():
        done += 1
        _shared_pretraining(plan, seed, todo, spec, f"[{done}/{total}] seed {seed}")
        if pretrain_only:
            continue
        for name in todo:
            done += 1
            cfg = plan.config(name, seed)
            _train_one(f"[{done}/{total}] seed {seed}: {name}", cfg, plan.folder(seed) / name, spec,
                       start_from=_start_of(plan, name, seed, cfg))
            if name in plan.rep.frontier:
                measure_frontier(plan.folder(seed) / name, plan.rep.temperatures)
    return []


def _shared_pretraining(plan: Plan, seed: int, todo: list[str], spec, label: str) -> None:
    """Seed `seed`'s shared pretraining, if any of `todo` starts from it."""
    if not needs_shared_pretraining(plan, todo):  # none of them starts from it
        print(f"{label}: pretraining: not needed by {', '.join(todo) or 'any run (none of this seed is to train)'}",
              file=sys.stderr)
        return
    _train_one(f"{label}: pretraining", plan.pretrain_config(seed), plan.folder(seed) / "pretrain", spec,
               start_from=None, ignored=_pretraining_only)


def _start_of(plan: Plan, name: str, seed: int, cfg: Config) -> Path | None:
    """The checkpoint run `name` of `seed` starts from: another run's pretraining, none (it
    pretrains on its own), the shared one's G (it pretrains its own D), or the shared one's end."""
    from ..checkpoint import latest_checkpoint

    folder = plan.folder(seed)
    if name in plan.rep.pretrained_by:
        return _pretraining_of(folder / plan.rep.pretrained_by[name], name)
    if plan.standalone(name):
        return None
    if plan.own_d_pretraining(name):
        return _generator_pretrained(folder / "pretrain", cfg)
    return latest_checkpoint(folder / "pretrain" / "checkpoints")


def _train_stacked_seeds(plan: Plan, seeds: list[int], only: list[str] | None) -> list[str]:
    """Every seed's shared pretraining, then each run: its seeds stacked into one model where
    its method allows it (stacked_runs.py), one after another where it does not."""
    from ..distributed.recovery import run_training
    from ..stacked_runs import stack_problem, train_stacked
    from ..tasks.text import load_task

    todo = {seed: plan_todo(plan, seed, only) for seed in seeds}
    for seed in seeds:
        _shared_pretraining(plan, seed, todo[seed], None, f"seed {seed}")
    names = sorted(dict.fromkeys(n for seed in seeds for n in todo[seed]), key=lambda n: n in plan.rep.pretrained_by)
    for name in names:
        group = [seed for seed in seeds if name in todo[seed]]
        cfgs = {seed: plan.config(name, seed) for seed in group}
        problem = stack_problem(cfgs[group[0]]) or (None if len(group) > 1 else "one seed to train")
        stacked = []
        for seed in group:
            label, run_dir = f"seed {seed}: {name}", plan.folder(seed) / name
            start = _start_of(plan, name, seed, cfgs[seed])
            if problem:
                _train_one(label + f" (not stacked: {problem})", cfgs[seed], run_dir, None, start_from=start)
                continue
            resume = _prepare(label, cfgs[seed], run_dir)
            if resume is not None:
                print(f"{label}: {'resuming' if resume else 'starting'} {run_dir} (stacked)", file=sys.stderr)
                stacked.append((cfgs[seed], load_task(cfgs[seed].data, run_dir), run_dir, resume, start))
        if len(stacked) > 1:
            train_stacked(stacked)
        elif stacked:  # the others had finished
            cfg, task, run_dir, resume, start = stacked[0]
            run_training(cfg, task, run_dir, None, resume=resume, start_from=None if resume else start)
        if name in plan.rep.frontier:
            for seed in group:
                measure_frontier(plan.folder(seed) / name, plan.rep.temperatures)
    return []


def plan_todo(plan: Plan, seed: int, only: list[str] | None) -> list[str]:
    """The runs of `seed` to train now (those in `only`), a run that starts from another's
    pretraining after it. A run kept as a record (reproduce.records) and not in out_dir is not
    trained again, unless a run to train starts from its pretraining."""
    names = [name for name in plan.runs_for(seed) if only is None or name in only]
    kept = {name for name in names if plan.read_dir(seed, name) != plan.folder(seed) / name}
    donors = {plan.rep.pretrained_by[n] for n in names if n in plan.rep.pretrained_by and n not in kept}
    for name in sorted(kept - donors, key=names.index):
        print(f"seed {seed}: {name}: kept in {plan.read_dir(seed, name)} (delete the record to train it again)",
              file=sys.stderr)
    names = [name for name in names if name not in kept or name in donors]
    return sorted(names, key=lambda name: name in plan.rep.pretrained_by)


def needs_shared_pretraining(plan: Plan, names: list[str]) -> bool:
    """Whether any of `names` starts from its seed's shared pretraining."""
    return any(not plan.standalone(name) for name in names)


def measure_frontier(run_dir: Path, temperatures: list[float]) -> None:
    """`run.py evaluate` of a finished run, once: its frontier.csv/.md/.png in `run_dir`."""
    from ..tasks.text import load_task
    from .frontier import frontier, load_run, write_frontier

    if not (run_dir / "summary.json").is_file() or (run_dir / "frontier.csv").is_file():
        return
    print(f"{run_dir}: the quality-diversity frontier at τ = {', '.join(map(str, temperatures))}",
          file=sys.stderr, flush=True)
    cfg, generator = load_run(run_dir)
    write_frontier({run_dir.name: frontier(cfg, load_task(cfg.data, run_dir), generator, temperatures)}, run_dir)


SHARED = "pretraining"  # a seed's shared pretraining, as a job of `_train_side_by_side`


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity (`taskset`, a container's cpuset) where
    the system says, else all of them. Several reproduce commands side by side on one machine,
    each given its own cores (clusters/gpu_tables.sh), then split those, not the machine's."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _train_side_by_side(plan: Plan, todo: dict[int, list[str]], jobs: int, child_args: list[str], *,
                        pretrain_only: bool = False, stack_seeds: bool = False) -> list[str]:
    """Train each seed's pretraining and runs (`todo`: the runs of each seed), at most `jobs`
    at a time, each in its own process: `run.py reproduce --seeds SEED --runs NAME` (the
    pretraining: `--pretrain-only` with the runs that start from it), output to
    <out_dir>/seed<k>/<name>.log; with `stack_seeds`, a run that stacks is one job for all
    its seeds (`--seeds 0,1,2 --stack-seeds`, log <out_dir>/<name>.stacked.log), started
    once every one of them can. A job starts as soon as what it starts from has finished
    (a run its seed's pretraining, a `pretrained_by` run its donor's pretraining, while the
    donor goes on with its adversarial phase), in the file's order, seed by seed: so the next
    seed's pretraining starts on a core the last runs of a seed leave free. Each process gets
    cores / jobs threads, of the cores this process may use (OpenMP threads of several processes on the same cores slowed an evaluation 30-80x on a 16-core
    GPU machine). A SIGINT or SIGTERM to this process alone is passed on to them; each
    checkpoints and stops, and this command then stops too."""
    import os
    import signal
    import time

    from ..trainer import Interrupted

    from ..stacked_runs import stack_problem

    threads = max(1, usable_cpus() // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    # a job: (its seeds, its run); one seed each, but for a run whose seeds train stacked
    queue: list[tuple[tuple[int, ...], str]] = []
    stacked = {}  # run -> its seeds, for the runs whose seeds train as one job
    for name in dict.fromkeys(n for names in todo.values() for n in names):
        seeds = tuple(seed for seed, names in todo.items() if name in names)
        if stack_seeds and len(seeds) > 1 and not stack_problem(plan.config(name, seeds[0])):
            stacked[name] = seeds
    for seed, names in todo.items():
        if needs_shared_pretraining(plan, names):
            queue.append(((seed,), SHARED))
        else:
            print(f"seed {seed}: pretraining: not needed by "
                  f"{', '.join(names) or 'any run (none of this seed is to train)'}", file=sys.stderr, flush=True)
        if not pretrain_only:  # a stacked job where its first seed's run would be
            queue += [(stacked.get(name, (seed,)), name) for name in names
                      if name not in stacked or stacked[name][0] == seed]
    total, started = len(queue), 0
    running: dict[tuple[tuple[int, ...], str], tuple[subprocess.Popen, Path]] = {}
    failed: list[str] = []
    broken: set[tuple[int, str]] = set()  # (seed, run) of the jobs that finished without success
    stopping: list[int] = []

    def runs_of(job: tuple[tuple[int, ...], str]) -> set[tuple[int, str]]:
        return {(seed, job[1]) for seed in job[0]}

    def after(job: tuple[tuple[int, ...], str]) -> set[tuple[int, str]]:
        """The (seed, run)s that `job` starts from."""
        seeds, name = job
        if name == SHARED or (plan.standalone(name) and name not in plan.rep.pretrained_by):
            return set()
        return {(seed, plan.rep.pretrained_by.get(name, SHARED)) for seed in seeds}

    def label(job: tuple[tuple[int, ...], str]) -> str:
        return f"seed{'s' if len(job[0]) > 1 else ''} {','.join(map(str, job[0]))}: {job[1]}"

    def forward(signum, frame):
        stopping.append(signum)
        queue.clear()
        for proc, _ in running.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    saved = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while queue or running:
            for job in [j for j in queue if after(j) & broken]:  # what it starts from failed
                queue.remove(job)
                broken |= runs_of(job)
                failed.append(label(job))
                print(f"{label(job)} not started: {min(after(job) & broken)[1]} did not finish", file=sys.stderr,
                      flush=True)
            while len(running) < jobs:
                pending = set().union(*map(runs_of, queue), *map(runs_of, running))
                ready = [j for j in queue if not waiting_on(plan, after(j) & pending, j[1])]
                if not ready:
                    break
                seeds, name = job = ready[0]
                queue.remove(job)
                started += 1
                if len(seeds) > 1:
                    log = Path(plan.rep.out_dir) / f"{name}.stacked.log"
                else:
                    log = plan.folder(seeds[0]) / f"{'pretrain' if name == SHARED else name}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                what = (["--runs", ",".join(todo[seeds[0]]), "--pretrain-only"] if name == SHARED
                        else ["--runs", name] + (["--stack-seeds"] if len(seeds) > 1 else []))
                cmd = [sys.executable, "-m", "seqgan_ray.cli", "reproduce", *child_args, *what,
                       "--seeds", ",".join(map(str, seeds)), "--no-report"]
                with open(log, "ab") as out:
                    # its own session: a signal to this command's process group (timeout,
                    # a scheduler) reaches it once, through `forward`, not twice (which would
                    # stop it without a checkpoint)
                    running[job] = (subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                     stdin=subprocess.DEVNULL, env=env,
                                                     start_new_session=True), log)
                print(f"[{started}/{total}] {label(job)} started in its own process ({threads} threads), "
                      f"log {log}", file=sys.stderr, flush=True)
            time.sleep(0.5)
            for job, (proc, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[job]
                ok = proc.returncode == 0
                print(f"{label(job)} {'finished' if ok else f'stopped (exit {proc.returncode})'}"
                      + ("" if ok else f"; see {log}"), file=sys.stderr, flush=True)
                if not ok:
                    broken |= runs_of(job)
                    if proc.returncode != 130:
                        failed.append(label(job))
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
    if stopping:
        raise Interrupted(f"stopped by {signal.Signals(stopping[0]).name}; each run wrote a checkpoint")
    return failed


def waiting_on(plan: Plan, unfinished: set[tuple[int, str]], name: str) -> set[tuple[int, str]]:
    """Of the unfinished (seed, run)s that run `name` starts from, those it must still wait
    for: all but a `pretrained_by` donor whose pretraining has ended (`_pretraining_of`)."""
    def ready(seed: int, donor: str) -> bool:
        if plan.rep.pretrained_by.get(name) != donor:
            return False
        try:
            _pretraining_of(plan.folder(seed) / donor, name)
        except ConfigError:
            return False
        return True

    return {(seed, run) for seed, run in unfinished if not ready(seed, run)}


def _pretraining_of(donor_dir: Path, name: str) -> Path:
    """The checkpoint at the end of a finished pretraining in `donor_dir` (D's when it has its
    own rounds, else G's, with LeakGAN's interleaved D rounds), for run `name` to start from:
    as soon as the donor's pretraining has ended, whether or not its adversarial phase has begun."""
    found = [p for phase in ("pretrain_d", "pretrain_g")
             for p in sorted((donor_dir / "checkpoints").glob(f"{phase}_*.pt"))[-1:]]
    done = ((donor_dir / "summary.json").is_file() or any((donor_dir / "checkpoints").glob("adversarial_*.pt"))
            or bool(found) and found[0].name == _last_pretraining_checkpoint(donor_dir))
    if not done or not found:
        raise ConfigError(f"{name} starts from the pretraining of {donor_dir.name} (reproduce.pretrained_by), "
                          f"which has not finished in {donor_dir} yet (or kept no checkpoint of it): "
                          f"train {donor_dir.name} first")
    return found[0]


def _last_pretraining_checkpoint(run_dir: Path) -> str:
    """The name of the checkpoint a run in `run_dir` writes at the end of its pretraining: after
    its last D round, or its last MLE epoch when it has none or they come between the epochs."""
    from ..algorithms import load_algorithm

    tc = load_config(run_dir / "config.yaml", saved=True).train
    interleaved = getattr(load_algorithm(tc.method), "interleaved_pretraining", False)
    if tc.pretrain_d_rounds and not interleaved:
        return f"pretrain_d_{tc.pretrain_d_rounds:06d}.pt"
    return f"pretrain_g_{tc.pretrain_g_epochs:06d}.pt"


def _generator_pretrained(pre_dir: Path, cfg: Config) -> Path:
    """The shared pretraining's checkpoint at the end of MLE, before D's pretraining."""
    path = pre_dir / "checkpoints" / f"pretrain_g_{cfg.train.pretrain_g_epochs:06d}.pt"
    if not path.is_file():
        raise ConfigError(f"{path} is missing: a run that pretrains its own discriminator starts from "
                          f"it (earlier versions kept only the newest checkpoints); delete {pre_dir} "
                          f"to pretrain again")
    return path


def _differences(run_dir: Path, cfg: Config, ignored: Callable[[str], bool]) -> list[tuple[str, Any, Any]]:
    """(key, value in run_dir/config.yaml, value in cfg) for every key that differs."""
    have, want = load_config(run_dir / "config.yaml", saved=True).to_dict(), cfg.to_dict()
    # on a corpus, the vocabulary, length and special tokens are the prepared corpus's (load_task
    # sets them): a process that has not loaded the task yet (a --jobs child) holds the file's
    from ..tasks.text import CORPUS_SETS

    derived = set(CORPUS_SETS) if cfg.data.corpus else set()
    return [(f"{s}.{k}", have[s][k], v) for s, values in want.items() for k, v in values.items()
            if not ignored(f"{s}.{k}") and f"{s}.{k}" not in derived and have[s][k] != v]


def _pretraining_only(key: str) -> bool:
    """Keys that do not matter to the shared pretraining run."""
    return key in UNCHECKED


def _train_one(label: str, cfg: Config, run_dir: Path, spec, *, start_from: Path | None,
               ignored: Callable[[str], bool] = TRIVIA.__contains__) -> None:
    """Train `run_dir` with `cfg`: skip it when finished, resume it when stopped, and extend a
    finished run when the file asks for more adversarial iterations than it ran."""
    from ..distributed.recovery import run_training
    from ..tasks.text import load_task

    resume = _prepare(label, cfg, run_dir, ignored)
    if resume is None:
        return
    print(f"{label}: {'resuming' if resume else 'starting'} {run_dir}", file=sys.stderr)
    run_training(cfg, load_task(cfg.data, run_dir), run_dir, spec, resume=resume, start_from=start_from)


def _prepare(label: str, cfg: Config, run_dir: Path,
             ignored: Callable[[str], bool] = TRIVIA.__contains__) -> bool | None:
    """Whether `run_dir` resumes (it has checkpoints: then its config must be the file's), or
    None when it has finished; a finished run the file asks more iterations of is reopened."""
    resume = any((run_dir / "checkpoints").glob("*.pt"))
    if resume:
        for name, have, want in _differences(run_dir, cfg, ignored):
            raise ConfigError(f"{run_dir} was trained with {name}={have!r}, but the reproduce file says "
                              f"{want!r}; delete {run_dir} to train it again, or set reproduce.out_dir "
                              f"to another folder")
        ran = load_config(run_dir / "config.yaml", saved=True).train.adv_iterations
        if (run_dir / "summary.json").is_file():
            if ran >= cfg.train.adv_iterations:
                print(f"{label}: done ({run_dir})", file=sys.stderr)
                return None
            print(f"{label}: extending {run_dir} from {ran} to {cfg.train.adv_iterations} iterations",
                  file=sys.stderr)
            (run_dir / "summary.json").unlink()  # written again at the end
        save_config(cfg, run_dir / "config.yaml")
    return resume


def start_in_background(argv: list[str], log: Path) -> int:
    """Run this same command detached from the terminal, output to `log`; returns its PID."""
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [a for a in argv if a != "--background"]
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "seqgan_ray.cli", *args], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return proc.pid
