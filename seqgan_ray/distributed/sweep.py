"""Ray Tune sweeps over any config key: `python run.py tune --config configs/tune_oracle.yaml`.

A sweep file is an ordinary config (the base every trial starts from) plus a `tune:` section:

    tune:
      metric: eval/oracle_nll      # reported after every adversarial iteration
      mode: min
      num_samples: 4
      scheduler: asha              # asha | pbt | fifo
      search_alg: random           # random | optuna (TPE; not with grid or pbt)
      search_space:
        rollout.num_rollouts: {choice: [4, 8, 16]}
        generator.adv_lr: {loguniform: [1.0e-4, 1.0e-2]}

Each trial starts its own learner, discriminator and rollout actors inside a placement group
that reserves a bundle for each of them, so trials never wait for actors they cannot get.
Pretraining is done once and shared, unless the search space touches it.

With `tune.stack: K` a trial is a group of K configurations that differ only in learning rates,
trained as one stacked model in the trial's own process (stacked_runs.py): on a GPU, where a
step of these small models is latency-bound, K trials cost about one. Each member keeps its own
run folder and its own row in results.csv.
"""

from __future__ import annotations

import copy
import csv
import math
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import (PRETRAINING, SHAPE, Config, ConfigError, all_keys, config_from_dict, keys_with,
                      load_with_section, resolve, save_config, set_key, unknown_key, unread_error,
                      unread_keys, validate)

KINDS = ("choice", "grid", "uniform", "loguniform", "randint")
SEARCH_ALGS = ("random", "optuna")
METRICS = ("eval/oracle_nll", "eval/nll_test", *(f"eval/{m}{n}" for m in ("bleu", "self_bleu") for n in range(2, 6)),
           "gen/reward_mean", "gen/pg_loss", "disc/loss", "disc/acc_real", "disc/acc_fake",
           "eval/infill_oracle_nll", "eval/infill_nll_test", "eval/unique_4gram_share")  # the last three: MaskGAN's
# Keys whose change alters pretraining; a search over any of them pretrains in every trial.
PRETRAINING_KEYS = keys_with(SHAPE, PRETRAINING)


@dataclass
class SweepConfig:
    """The `tune:` section of a sweep file."""

    metric: str = "eval/oracle_nll"
    mode: str = "min"
    num_samples: int = 4
    scheduler: str = "asha"
    search_alg: str = "random"  # random (Tune's variant generator) | optuna (TPE, `pip install optuna`)
    grace_period: int = 2
    reduction_factor: int = 2
    perturbation_interval: int = 2
    max_concurrent: int = 0
    rollout_workers: int = 1
    driver_cpus: float = 0.25
    name: str = "sweep"
    out_dir: str = "runs/tune"
    pretrained: str = ""
    stack: int = 1  # configurations a trial trains as one stacked model (for a GPU); 1: a trial, a config
    search_space: dict[str, dict[str, list]] = field(default_factory=dict)


def load_sweep(path: Path, overrides: list[str] = ()) -> tuple[Config, SweepConfig]:
    """Read a sweep file; every error names the key and is raised before any trial starts."""
    base, sweep, where, given = load_with_section(path, "tune", SweepConfig, overrides, what="sweep",
                                                  hint="metric, mode, search_space, ...")
    resolve(base, given | set(sweep.search_space))
    if unread := unread_keys(base, set(sweep.search_space) & set(all_keys())):  # a search that changes nothing
        raise ConfigError(f"{where}tune.search_space: {unread_error(unread)}")
    reported = reported_metrics(base)
    if sweep.metric not in reported:
        task = f"text corpus {base.data.corpus}" if base.data.corpus else "the synthetic task"
        raise ConfigError(f"{where}tune.metric '{sweep.metric}' is never reported by a trial of this sweep "
                          f"({task}, train.method {base.train.method}); choose one of {', '.join(reported)}")
    if sweep.mode not in ("min", "max"):
        raise ConfigError(f"{where}tune.mode must be 'min' or 'max', got {sweep.mode!r}")
    if sweep.scheduler not in ("asha", "pbt", "fifo"):
        raise ConfigError(f"{where}tune.scheduler must be asha, pbt or fifo, got {sweep.scheduler!r}")
    _check_search_alg(sweep, where)
    if sweep.num_samples < 1 or sweep.rollout_workers < 1:
        raise ConfigError(f"{where}tune.num_samples and tune.rollout_workers must be >= 1")
    if not sweep.search_space:
        raise ConfigError(f"{where}tune.search_space is empty; give at least one key to search")
    for key, spec in sweep.search_space.items():
        _check_space(base, key, spec, where)
    if sweep.stack != 1:
        _check_stack(base, sweep, where)
    # Trials run in their own folders: make the data path independent of the working directory.
    for key in ("oracle_dir", "corpus", "test_text"):  # trials run in their own folders
        if getattr(base.data, key):
            setattr(base.data, key, str(Path(getattr(base.data, key)).resolve()))
    return base, sweep


def _check_search_alg(sweep: SweepConfig, where: str) -> None:
    if sweep.search_alg not in SEARCH_ALGS:
        raise ConfigError(f"{where}tune.search_alg must be one of {', '.join(SEARCH_ALGS)}, got {sweep.search_alg!r}")
    if sweep.search_alg == "random":
        return
    grids = [k for k, spec in sweep.search_space.items() if isinstance(spec, dict) and "grid" in spec]
    if grids:
        raise ConfigError(f"{where}tune.search_space.{grids[0]}: a grid is walked by tune.search_alg random; "
                          f"with {sweep.search_alg}, give choice instead")
    if sweep.scheduler == "pbt":
        raise ConfigError(f"{where}tune.scheduler pbt mutates trials itself and takes no search algorithm: "
                          f"set tune.search_alg random, or tune.scheduler asha or fifo")
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError(f"{where}tune.search_alg optuna needs the optuna package: pip install -e \".[optuna]\" "
                          f"(or pip install optuna)") from None


def _check_stack(base: Config, sweep: SweepConfig, where: str) -> None:
    """Refuse a stacked sweep its trials could not train, naming the key, before any work."""
    from ..stacked_runs import MAY_DIFFER, check_memory, stack_problem

    K = sweep.stack
    if not isinstance(K, int) or K < 1:
        raise ConfigError(f"{where}tune.stack must be a whole number >= 1 (configurations a trial trains "
                          f"stacked), got {K!r}")
    if problem := stack_problem(base):
        raise ConfigError(f"{where}tune.stack {K}: {problem}; set tune.stack 1")
    for key, spec in sweep.search_space.items():
        if key not in MAY_DIFFER:
            raise ConfigError(f"{where}tune.search_space.{key}: with tune.stack {K} a trial trains {K} "
                              f"configurations as one stacked model, which may differ only in "
                              f"{', '.join(MAY_DIFFER)}; search {key} with tune.stack 1")
        if "grid" in spec:
            raise ConfigError(f"{where}tune.search_space.{key}: a grid gives one value a trial; with "
                              f"tune.stack {K} give choice instead")
    if sweep.scheduler == "pbt":
        raise ConfigError(f"{where}tune.scheduler pbt exploits and mutates one configuration a trial; with "
                          f"tune.stack {K} use asha or fifo")
    if sweep.num_samples % K:
        raise ConfigError(f"{where}tune.num_samples {sweep.num_samples} is not a multiple of tune.stack {K}: "
                          f"each trial trains {K} of the configurations")
    # on this machine's device; a trial on another machine checks its own before it trains
    check_memory(base, K, what=f"{where}tune.stack", fewer="a smaller tune.stack")


def member_params(params: dict[str, Any], k: int) -> dict[str, Any]:
    """Member k's sampled values out of a stacked trial's ({"generator.adv_lr#1": ...})."""
    return {key.rsplit("#", 1)[0]: value for key, value in params.items() if key.endswith(f"#{k}")}


def _search_alg(sweep: SweepConfig):
    """Tune's search algorithm for tune.search_alg (None: its random / grid variant generator)."""
    if sweep.search_alg == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch()  # metric and mode come from the TuneConfig
    return None


def reported_metrics(cfg: Config) -> tuple[str, ...]:
    """What a trial of `cfg` reports after every iteration that a sweep can select by: its task's
    evaluation and its method's metrics (the algorithm's `reports`, its own evaluation's too; an
    algorithm of your own that does not say: any of METRICS)."""
    from ..algorithms import load_algorithm
    from ..tasks.text import BLEU_ORDERS

    evals = (("eval/nll_test", *(f"eval/{m}{n}" for m in ("bleu", "self_bleu") for n in BLEU_ORDERS))
             if cfg.data.corpus else ("eval/oracle_nll", "eval/nll_test"))
    own = getattr(load_algorithm(cfg.train.method), "reports", None)
    return (*evals, *(m for m in METRICS if not m.startswith("eval/"))) if own is None else (*evals, *own)


def _check_space(base: Config, key: str, spec: Any, where: str) -> None:
    if key not in all_keys():
        raise unknown_key(key, all_keys(), f"{where}tune.search_space: ")
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise ConfigError(f"{where}tune.search_space.{key} must be one of {{kind: values}} with kind in "
                          f"{', '.join(KINDS)}, got {spec!r}")
    kind, values = next(iter(spec.items()))
    if kind in ("choice", "grid"):
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}tune.search_space.{key}: {kind} needs a non-empty list of values")
        for v in values:  # each value must be valid for the key
            trial = copy.deepcopy(base)
            set_key(trial, key, v, where=f"{where}tune.search_space.{key}: ")
            validate(trial)
        return
    if not (isinstance(values, list) and len(values) == 2 and all(isinstance(v, (int, float)) for v in values)):
        raise ConfigError(f"{where}tune.search_space.{key}: {kind} needs [low, high], got {values!r}")
    low, high = values
    if low > high:
        raise ConfigError(f"{where}tune.search_space.{key}: low {low} > high {high}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}tune.search_space.{key}: loguniform needs low > 0, got {low}")
    for v in (low, high if kind != "randint" else high - 1):
        trial = copy.deepcopy(base)
        set_key(trial, key, v, where=f"{where}tune.search_space.{key}: ")
        validate(trial)


def param_space(sweep: SweepConfig) -> dict[str, Any]:
    from ray import tune

    make = {"choice": lambda v: tune.choice(v), "grid": lambda v: tune.grid_search(v),
            "uniform": lambda v: tune.uniform(*v), "loguniform": lambda v: tune.loguniform(*v),
            "randint": lambda v: tune.randint(*v)}
    members = [f"#{k}" for k in range(sweep.stack)] if sweep.stack > 1 else [""]  # each its own draw
    return {key + m: make[kind](values) for key, spec in sweep.search_space.items()
            for kind, values in spec.items() for m in members}


def searches_pretraining(sweep: SweepConfig) -> bool:
    return any(key in PRETRAINING_KEYS for key in sweep.search_space)


def trial_config(base: dict[str, Any], params: dict[str, Any]) -> Config:
    cfg = config_from_dict(copy.deepcopy(base))
    for key, value in params.items():
        if key in all_keys():
            set_key(cfg, key, value)
    validate(cfg)
    return cfg


# --------------------------------------------------------------------------- one trial

def _trial_run_config(setup: dict[str, Any], params: dict[str, Any]) -> Config:
    """A trial's config: the base with its sampled values, as a trial under Tune trains it."""
    cfg = trial_config(setup["base"], params)
    cfg.run.progress = False
    # Tune's checkpoints hold the trial's state (Tune restarts a failed trial from them): the run
    # writes none of its own between phase ends, and removes those when it finishes
    cfg.train.checkpoint_every, cfg.train.checkpoint_every_s = cfg.train.adv_iterations + 1, 0.0
    cfg.run.keep_checkpoints_at_end = False
    cfg.train.eval_every = 1  # the metric is reported after every adversarial iteration
    return cfg


def _start_from(setup: dict[str, Any], member: str = "") -> Path | None:
    """What a trial (or member `member` of a stacked one) starts from: its Tune checkpoint
    (PBT's exploit or a resumed sweep), else the shared pretraining."""
    from ray import tune

    restored = tune.get_checkpoint()
    if restored is not None:
        return Path(restored.to_directory()) / member / "state.pt"
    return Path(setup["pretrained"]) if setup["pretrained"] else None


def _ordered(metrics: dict[str, float], first: list[str]) -> dict[str, float]:
    """The searched metric and the evaluation first: Tune's live table shows the first few."""
    return {**{k: metrics[k] for k in first if k in metrics}, **metrics}


def run_trial(params: dict[str, Any], setup: dict[str, Any]) -> None:
    """The Tune trainable: train one config on its own actors, reporting every iteration.
    `params` holds the sampled keys; `setup` what every trial shares (base config, resources)."""
    import tempfile

    from ray import tune

    from ..tasks.text import load_task
    from ..trainer import Trainer
    from .recovery import run_training

    cfg = _trial_run_config(setup, params)
    run_dir = Path(tune.get_context().get_trial_dir()) / "run"
    every = setup["checkpoint_every"]
    first = [setup.get("metric", ""), *METRICS]

    def report(trainer: Trainer, metrics: dict[str, float]) -> None:
        metrics = _ordered(metrics, first)
        if trainer.step % every == 0 or trainer.step == cfg.train.adv_iterations:
            with tempfile.TemporaryDirectory() as tmp:
                trainer.write_state(Path(tmp) / "state.pt")
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        else:
            tune.report(metrics)

    # No restarts inside a trial: Tune's own failure handling restarts it from its checkpoint.
    run_training(cfg, load_task(cfg.data, run_dir), run_dir, spec=setup["spec"], pool_size=setup["rollout_workers"],
                 start_from=_start_from(setup), retries=0, on_iteration=report)


def run_stacked_trial(params: dict[str, Any], setup: dict[str, Any]) -> None:
    """The Tune trainable of a stacked sweep (tune.stack K): K configs, member k's from the
    values `params` holds as "key#k", trained as one stacked model in this process, each into
    its own folder run<k>. After each iteration one report: the best member's value of the
    searched metric under its own name (what the scheduler compares), and every member's
    metrics as "member<k>/<name>"; every member's state in one Tune checkpoint."""
    import tempfile

    import torch
    from ray import tune

    from ..stacked_runs import train_stacked
    from ..tasks.text import load_task

    K, metric, every = setup["stack"], setup["metric"], setup["checkpoint_every"]
    torch.set_num_threads(setup["threads"])
    cfgs = [_trial_run_config(setup, member_params(params, k)) for k in range(K)]
    trial_dir = Path(tune.get_context().get_trial_dir())
    by_step: dict[int, dict[int, tuple[Any, dict[str, float]]]] = {}

    def member_report(k: int):
        def hook(trainer, metrics: dict[str, float]) -> None:
            done = by_step.setdefault(trainer.step, {})
            done[k] = (trainer, metrics)
            if len(done) < K:  # the members end an iteration one after another
                return
            del by_step[trainer.step]
            values = [done[j][1].get(metric, math.nan) for j in range(K)]
            best = _best(values, setup["mode"])
            merged = {metric: values[best], "best_member": float(best),
                      **{f"member{j}/{name}": v for j in range(K) for name, v in done[j][1].items()}}
            if trainer.step % every == 0 or trainer.step == cfgs[k].train.adv_iterations:
                with tempfile.TemporaryDirectory() as tmp:
                    for j in range(K):
                        (Path(tmp) / f"member{j}").mkdir()
                        done[j][0].write_state(Path(tmp) / f"member{j}" / "state.pt")
                    tune.report(merged, checkpoint=tune.Checkpoint.from_directory(tmp))
            else:
                tune.report(merged)
        return hook

    runs = []
    for k, cfg in enumerate(cfgs):
        run_dir = trial_dir / f"run{k}"
        runs.append((cfg, load_task(cfg.data, run_dir), run_dir, False, _start_from(setup, f"member{k}")))
    train_stacked(runs, on_iteration=[member_report(k) for k in range(K)], what="tune.stack")


def _best(values: list[float], mode: str) -> int:
    """The index of the best value by `mode` (min or max), NaN last; 0 when all are NaN."""
    ok = [j for j, v in enumerate(values) if not math.isnan(v)]
    return (min if mode == "min" else max)(ok, key=values.__getitem__) if ok else 0


# --------------------------------------------------------------------------- the sweep

def run_sweep(base: Config, sweep: SweepConfig, spec, *, resume_dir: Path | None = None) -> tuple[Path, int]:
    """Pretrain once (unless searched), run the trials, write results.csv and best_config.yaml.
    Returns the sweep folder and how many trials did not finish (an interrupted sweep)."""
    from ray import tune

    sweep_dir = (resume_dir or Path(sweep.out_dir) / sweep.name).resolve()
    setup_file = sweep_dir / "sweep_setup.pkl"
    if resume_dir is not None:
        if not tune.Tuner.can_restore(str(sweep_dir)):
            raise ConfigError(f"{sweep_dir}: no sweep to resume here (no Tune experiment state)")
        setup = pickle.loads(setup_file.read_bytes())["setup"]
        tuner = tune.Tuner.restore(str(sweep_dir), trainable=_trainable(spec, sweep, setup),
                                   resume_unfinished=True, resume_errored=True)
    else:
        if setup_file.exists():
            raise ConfigError(f"sweep folder {sweep_dir} already exists; set tune.name to another "
                              f"name or continue it with: python run.py tune --resume {sweep_dir}")
        sweep_dir.parent.mkdir(parents=True, exist_ok=True)
        pretrained = sweep.pretrained
        if not pretrained and not searches_pretraining(sweep):
            pretrained = str(_pretrain_once(base, spec, sweep_dir.parent / f"{sweep.name}-pretrained"))
        setup = {"base": base.to_dict(), "spec": spec, "pretrained": pretrained, "metric": sweep.metric,
                 "rollout_workers": sweep.rollout_workers, "mode": sweep.mode, "stack": sweep.stack,
                 "threads": spec.learner.threads,
                 "checkpoint_every": sweep.perturbation_interval if sweep.scheduler == "pbt"
                 else base.train.checkpoint_every}
        sweep_dir.mkdir(parents=True, exist_ok=True)
        setup_file.write_bytes(pickle.dumps({"base": base, "sweep": sweep, "setup": setup}))
        tuner = tune.Tuner(
            _trainable(spec, sweep, setup), param_space=param_space(sweep),
            tune_config=tune.TuneConfig(metric=sweep.metric, mode=sweep.mode, num_samples=sweep.num_samples // sweep.stack,
                                        scheduler=_scheduler(sweep), search_alg=_search_alg(sweep),
                                        max_concurrent_trials=sweep.max_concurrent or None),
            run_config=tune.RunConfig(name=sweep.name, storage_path=str(sweep_dir.parent),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=4 if sweep.scheduler == "pbt" else 2), verbose=1))
    with _without_ray_resume_hint():
        results = tuner.fit()
    return sweep_dir, _write_results(results, base, sweep, sweep_dir)


class _without_ray_resume_hint:
    """Drop Tune's "Resume experiment with: Tuner.restore(...)" warning while a sweep runs: it names
    Python our users do not write; `run.py tune --resume DIR`, which we print, is the way."""

    class _Drop:
        def filter(self, record) -> bool:
            return "Resume experiment with" not in record.getMessage()

    def __enter__(self):
        import logging

        self.logger, self.drop = logging.getLogger("ray.tune.tune"), self._Drop()
        self.logger.addFilter(self.drop)

    def __exit__(self, *exc) -> None:
        self.logger.removeFilter(self.drop)


def load_sweep_setup(sweep_dir: Path) -> tuple[Config, SweepConfig]:
    """The base config and sweep settings saved in a sweep folder (for --resume)."""
    path = sweep_dir / "sweep_setup.pkl"
    if not path.is_file():
        raise ConfigError(f"{sweep_dir}: not a sweep folder (no sweep_setup.pkl)")
    saved = pickle.loads(path.read_bytes())
    return saved["base"], saved["sweep"]


def _trainable(spec, sweep: SweepConfig, setup: dict[str, Any]):
    from ray import tune

    stacked = setup.get("stack", 1) > 1
    return tune.with_resources(tune.with_parameters(run_stacked_trial if stacked else run_trial, setup=setup),
                               _trial_resources(spec, sweep, stacked=stacked))


def _trial_resources(spec, sweep: SweepConfig, *, stacked: bool = False):
    """A trial's placement group: a bundle for its own process and one for each of its actors;
    a stacked trial runs every role in its own process, so one bundle holds what they would
    (at most one GPU: the stacked model lives on one device)."""
    from ray import tune

    def bundle(res) -> dict[str, float]:
        return {k: v for k, v in (("CPU", res.num_cpus), ("GPU", res.num_gpus)) if v > 0}

    bundles = [{"CPU": sweep.driver_cpus}, bundle(spec.learner), bundle(spec.discriminator)]
    bundles += [bundle(spec.rollout_worker)] * sweep.rollout_workers
    if stacked:
        gpus = min(1.0, sum(b.get("GPU", 0.0) for b in bundles))
        bundles = [{"CPU": sum(b.get("CPU", 0.0) for b in bundles), **({"GPU": gpus} if gpus else {})}]
    return tune.PlacementGroupFactory(bundles)


def _scheduler(sweep: SweepConfig):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    if sweep.scheduler == "asha":
        return ASHAScheduler(time_attr="training_iteration", grace_period=sweep.grace_period,
                             reduction_factor=sweep.reduction_factor)
    if sweep.scheduler == "pbt":
        mutations = {key: param_space(SweepConfig(search_space={key: spec}))[key]
                     for key, spec in sweep.search_space.items()}
        return PopulationBasedTraining(time_attr="training_iteration",
                                       perturbation_interval=sweep.perturbation_interval,
                                       hyperparam_mutations=mutations)
    return FIFOScheduler()


def _pretrain_once(base: Config, spec, run_dir: Path) -> Path:
    """Pretrain G and D once for every trial; returns the checkpoint the trials start from."""
    from ..checkpoint import latest_checkpoint
    from ..tasks.text import load_task
    from .recovery import run_training

    if (run_dir / "summary.json").is_file():
        return latest_checkpoint(run_dir / "checkpoints")
    cfg = copy.deepcopy(base)
    cfg.train.adv_iterations = 0
    print(f"pretraining once for all trials into {run_dir}", file=sys.stderr)
    run_training(cfg, load_task(cfg.data, run_dir), run_dir, spec, pool_size=1, resume=run_dir.exists())
    return latest_checkpoint(run_dir / "checkpoints")


def _finished(result, base: Config) -> bool:
    """Whether a trial ended: it failed, ran all its iterations, or its scheduler stopped it
    (Tune's `done`). An interrupted trial may have reported many iterations and is none of
    these; counting it finished wrote a half-run trial into the table and said the sweep was
    done."""
    iterations = result.metrics.get("training_iteration", 0)
    return bool(result.error or result.metrics.get("done")
                or iterations >= result.config.get("train.adv_iterations", base.train.adv_iterations))


def _write_results(results, base: Config, sweep: SweepConfig, sweep_dir: Path) -> int:
    keys = list(sweep.search_space)
    rows, unfinished = [], 0
    for r in results:
        if r.config is None or sweep.metric not in (r.metrics or {}) or not _finished(r, base):
            unfinished += 1  # not started, or interrupted
            continue
        status = {"iterations": r.metrics.get("training_iteration", 0),
                  "status": "ERROR" if r.error else "TERMINATED", "trial_dir": r.path}
        # a stacked trial (tune.stack) holds a row for each member: its values and its metrics
        members = [("", "", None)] if sweep.stack == 1 else [(f"#{j}", f"member{j}/", j) for j in range(sweep.stack)]
        for suffix, prefix, j in members:
            others = {m: r.metrics[prefix + m] for m in METRICS if m != sweep.metric and prefix + m in r.metrics}
            rows.append({**{k: r.config.get(k + suffix) for k in keys},
                         sweep.metric: r.metrics.get(prefix + sweep.metric), **others, **status,
                         **({} if j is None else {"member": j})})
    if unfinished:
        print(f"{unfinished} trial(s) did not finish; continue the sweep with: "
              f"python run.py tune --resume {sweep_dir}", file=sys.stderr)
    if not rows:
        return unfinished
    sign = 1 if sweep.mode == "min" else -1
    rows.sort(key=lambda row: (sign * row[sweep.metric] if row[sweep.metric] is not None else math.inf,
                               str(row["trial_dir"]), row.get("member", 0)))  # ties in a fixed order
    columns = list(dict.fromkeys(k for row in rows for k in row))  # trials may report different metrics
    with open(sweep_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    widths = {k: max(len(k), *(len(_fmt(row.get(k, ""))) for row in rows)) for k in columns if k != "trial_dir"}
    print("  ".join(k.ljust(w) for k, w in widths.items()))
    for row in rows:
        print("  ".join(_fmt(row.get(k, "")).ljust(w) for k, w in widths.items()))
    best = next((row for row in rows if row[sweep.metric] is not None), None)
    if best is None:
        print("no trial reported the metric; see the trial folders for errors", file=sys.stderr)
        return unfinished
    cfg = trial_config(base.to_dict(), {k: best[k] for k in keys})
    cfg.run.name = ""
    save_config(cfg, sweep_dir / "best_config.yaml")
    print(f"best {sweep.metric} = {best[sweep.metric]:.4f}; its config: {sweep_dir / 'best_config.yaml'} "
          f"(python run.py --config {sweep_dir / 'best_config.yaml'}); table: {sweep_dir / 'results.csv'}")
    return unfinished


def _fmt(value: Any) -> str:
    """A float to four decimals (NLL-oracle 10.1123, not 10.11), a rate like 1e-4 to four digits."""
    if isinstance(value, float):
        return f"{value:.4f}" if 1e-2 <= abs(value) < 1e5 else f"{value:.4g}"
    return str(value)
