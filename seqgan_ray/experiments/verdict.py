"""Each method against MLE on the synthetic task: the frontier gap, the regime checks, the verdict.

A generator sampled at a lower temperature scores a better NLL-oracle at a worse NLL-test, so a
method's NLL-oracle alone says nothing against MLE. The frontier gap is what it does say: the
run's NLL-oracle at τ = 1 minus the baseline's NLL-oracle at the same NLL-test, read off the
baseline's frontier (`run.py evaluate` over temperatures) by linear interpolation, per seed,
against the baseline of the same seed:

    gap = run.oracle_nll(τ=1) - baseline.oracle_nll(at run.nll_test(τ=1))   < 0: better samples
                                                                           at equal coverage

Its 95% interval is a t-interval over the seeds (3 or more), else the evaluation samples' own
intervals combined. Before a row's gap counts, the run must be in the regime its method is about
(`regime`): D beats chance on fresh samples (held-out accuracy above D_CHANCE, after its
pretraining and at the end), the relaxed methods' inverse temperature β reached the range their
paper operates in (reproduce.beta_min), and G's weights moved (gen/param_change above G_MOVED).

    gap = seed_gap(run_points, mle_points)          # (gap, half-width) or None
    judged = judge(gaps, checks)                    # the verdict in words
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

from .frontier import FrontierPoint, baseline_at

D_CHANCE = 0.55   # a D whose held-out accuracy is at or below this is taken to be at chance
G_MOVED = 1e-3    # ‖θ − θ₀‖ / ‖θ₀‖ over the adversarial phase below this: G did not move
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}

BEATS = "beats MLE with temperature at equal NLL-test"
NO_SIGNAL = "no better than the no-signal control (sharpens as REINFORCE on its own samples does)"
SHARPENS = "only sharpens (lies on MLE's frontier)"
WORSE = "worse"


class Gap(NamedTuple):
    """A run's frontier gap to the baseline, over the seeds that have both frontiers."""

    per_seed: list[float]
    sample_ci: list[float]    # each seed's 95% half-width from its evaluation samples
    seeds: list[int]

    @property
    def mean(self) -> float:
        return sum(self.per_seed) / len(self.per_seed)

    @property
    def over_seeds(self) -> bool:
        return len(self.per_seed) >= 3

    @property
    def ci(self) -> float:
        """95% half-width of the mean gap: a t-interval over 3 or more seeds, else the seeds'
        sample intervals combined (which leaves out how training varies from seed to seed)."""
        k = len(self.per_seed)
        if not self.over_seeds:
            return math.sqrt(sum(h * h for h in self.sample_ci)) / k
        sd = math.sqrt(sum((g - self.mean) ** 2 for g in self.per_seed) / (k - 1))
        return T_975.get(k - 1, 1.96) * sd / math.sqrt(k)


def at_temperature(points: Sequence[FrontierPoint], tau: float = 1.0) -> FrontierPoint | None:
    """The point of `points` measured at `tau`, or None."""
    return next((p for p in points if math.isclose(p.temperature, tau)), None)


def seed_gap(points: Sequence[FrontierPoint], baseline: Sequence[FrontierPoint]) -> tuple[float, float] | None:
    """One seed's gap: the run's NLL-oracle at τ = 1 minus the baseline's at the same NLL-test,
    and its 95% half-width (the two intervals combined); None when the run has no τ = 1 point or
    its NLL-test lies outside the baseline's frontier (widen reproduce.temperatures)."""
    p = at_temperature(points)
    if p is None:
        return None
    base = baseline_at(baseline, p.nll_test)
    if base is None:
        return None
    return p.oracle_nll - base[0], math.hypot(p.oracle_nll_ci95 or 0.0, base[1])


def collect_gap(runs: dict[int, Sequence[FrontierPoint]], baselines: dict[int, Sequence[FrontierPoint]]) -> Gap | None:
    """The gap over the seeds (keys) for which both the run and the baseline have a frontier and
    the run's τ = 1 point lies on the baseline's; None when no seed has one."""
    gaps = [(seed, g) for seed in sorted(runs) if seed in baselines and (g := seed_gap(runs[seed], baselines[seed]))]
    return Gap([g for _, (g, _) in gaps], [h for _, (_, h) in gaps], [s for s, _ in gaps]) if gaps else None


def verdict(gap: Gap) -> str:
    """The verdict from the gap's interval: below 0 beyond it, beats MLE; above 0 beyond it,
    worse; else it lies on MLE's frontier."""
    if gap.mean + gap.ci < 0:
        return BEATS
    if gap.mean - gap.ci > 0:
        return WORSE
    return SHARPENS


class Check(NamedTuple):
    """One regime check of one run, over its seeds: `ok` None when it does not apply."""

    name: str
    ok: bool | None
    shown: str                # the values behind it, for the table


def d_learns(after_pretraining: list[float | None], after_run: list[float | None], *,
             pretrains_d: bool, trainset: Sequence[float | None] = ()) -> Check:
    """D beats chance on fresh real against fresh G samples: held-out accuracy above D_CHANCE at
    the end of its pretraining (when the method pretrains D) and at the end of the run, on every
    seed. Does not apply to a method that trains no D (both lists all None). `trainset`: D's
    accuracy on training sequences against the same fakes at the end, shown beside (a D far
    above chance there and at chance on held-out data recognises its training set, not the data)."""
    if all(a is None for a in after_run):
        return Check("D learns", None, "–")
    need = [*(after_pretraining if pretrains_d else []), *after_run]
    ok = all(a is not None and a > D_CHANCE for a in need)
    train = f" (training sequences: {_per_seed(list(trainset), '.2f')})" if any(t is not None for t in trainset) else ""
    return Check("D learns", ok, f"{_per_seed(after_pretraining, '.2f') if pretrains_d else 'no D pretraining'}; "
                                 f"{_per_seed(after_run, '.2f')}{train}")


def beta_reached(last_beta: list[float | None], beta_min: float | None) -> Check:
    """The relaxed methods: the last inverse temperature β of every seed at or above `beta_min`
    (the range the method's paper operates in). Does not apply without a β or a beta_min."""
    if beta_min is None or all(b is None for b in last_beta):
        shown = " / ".join(f"{b:.3g}" for b in last_beta if b is not None)
        return Check("β reached", None, f"{shown} (no range set)" if shown else "–")
    ok = all(b is not None and b >= beta_min for b in last_beta)
    return Check("β reached", ok, f"{_per_seed(last_beta, '.3g')} (≥ {beta_min:g})")


def g_moved(changes: list[float | None]) -> Check:
    """G's weights moved over the adversarial phase: gen/param_change above G_MOVED on every
    seed. Not checked for runs from before it was logged (all None)."""
    if all(c is None for c in changes):
        return Check("G moved", None, "not logged")
    ok = all(c is not None and c > G_MOVED for c in changes)
    return Check("G moved", ok, _per_seed(changes, ".2g"))


def _per_seed(values: list[float | None], spec: str) -> str:
    return " / ".join("–" if v is None else format(v, spec) for v in values)


def judge(gap: Gap | None, checks: Sequence[Check], control: Gap | None = None) -> str:
    """The verdict column: the failed regime checks when any failed (a run outside its regime
    has no verdict), else the verdict from the gap, else why there is none. With the gap to a
    no-signal control (reproduce.control, or the run's own in reproduce.controls): a run that beats MLE but not the control beyond its
    interval gets NO_SIGNAL instead."""
    failed = [c.name for c in checks if c.ok is False]
    if failed:
        return f"no verdict: regime check failed ({', '.join(failed)})"
    if gap is None:
        return "no verdict yet: no frontier gap (its τ = 1 NLL-test outside MLE's frontier, or not measured)"
    said = verdict(gap)
    if said == BEATS and control is not None and not control.mean + control.ci < 0:
        return NO_SIGNAL
    return said


def gap_cell(gap: Gap | None, seeds: list[int]) -> str:
    """'gap | ± | per seed' cells of the table (blank when there is no gap)."""
    if gap is None:
        return " |  | "
    some = f" (seeds {', '.join(map(str, gap.seeds))})" if gap.seeds != seeds else ""
    return (f"{gap.mean:+.3f} | {gap.ci:.3f}{'ᵗ' if gap.over_seeds else ''} | "
            f"{' / '.join(f'{g:+.3f}' for g in gap.per_seed)}{some}")


# ---------------------------------------------------------------------- the report's section

class RunRegime(NamedTuple):
    """What a run's folders say about its regime, one entry per seed that finished."""

    seeds: list[int]
    d_after_pretraining: list[float | None]
    d_after_run: list[float | None]
    last_beta: list[float | None]
    param_change: list[float | None]
    d_trainset: list[float | None]   # D's accuracy on training sequences at the end (eval/d_trainset_acc)


def read_regime(plan, name: str) -> RunRegime:
    """Each finished seed of run `name`: D's held-out accuracy after pretraining and after the
    run (summary.json), the last relaxed/inverse_temperature and the last gen/param_change."""
    import json

    from ..runlog import read_metrics

    out = RunRegime([], [], [], [], [], [])
    for seed in plan.rep.seeds:
        run_dir = plan.read_dir(seed, name)
        if name not in plan.runs_for(seed) or not (run_dir / "summary.json").is_file():
            continue
        summary = json.loads((run_dir / "summary.json").read_text())
        records = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("phase") == "adversarial"]
        out.seeds.append(seed)
        out.d_after_pretraining.append(summary.get("d_heldout_acc_after_pretraining"))
        out.d_after_run.append(summary.get("d_heldout_acc_after_adversarial"))
        out.last_beta.append(_last(records, "relaxed/inverse_temperature"))
        out.param_change.append(_last(records, "gen/param_change"))
        out.d_trainset.append(summary.get("d_trainset_acc_after_adversarial"))
    return out


def _last(records: list[dict], key: str) -> float | None:
    return next((r[key] for r in reversed(records) if key in r), None)


def read_frontiers(plan, name: str) -> dict[int, list[FrontierPoint]]:
    """Run `name`'s frontier on every seed where `run.py evaluate` measured it."""
    from .frontier import read_frontier

    out = {}
    for seed in plan.rep.seeds:
        path = plan.read_dir(seed, name) / "frontier.csv"
        if path.is_file():
            out[seed] = next(iter(read_frontier(path).values()))
    return out


def regime_checks(plan, name: str, regime: RunRegime) -> list[Check]:
    cfg = plan.run_configs[name]
    return [d_learns(regime.d_after_pretraining, regime.d_after_run, pretrains_d=cfg.train.pretrain_d_rounds > 0,
                     trainset=regime.d_trainset),
            beta_reached(regime.last_beta, plan.rep.beta_min.get(name)),
            g_moved(regime.param_change)]


def against_baseline_section(plan) -> list[str]:
    """The synthetic report's judgement of every run against the baseline at equal NLL-test:
    the frontier gap with its interval, the regime checks and the verdict in words. Empty when
    the baseline's frontier is not measured (reproduce.frontier)."""
    from .report import _label

    base = plan.rep.baseline
    if plan.base.data.corpus or base not in plan.rep.frontier:
        return []
    baselines = read_frontiers(plan, base)
    lines = ["## Against MLE at equal NLL-test: the frontier gap, the regime checks, the verdict", "",
             f"Frontier gap: a run's NLL-oracle at τ = 1 minus `{base}`'s NLL-oracle at the same NLL-test, read "
             f"off `{base}`'s frontier of the same seed (linear between its temperatures); ± a 95% interval, a "
             f"t-interval over the seeds (ᵗ) when there are 3 or more, else from the evaluation samples. "
             f"Verdict: '{BEATS}' when the gap is below 0 beyond its interval, '{WORSE}' when above 0 beyond "
             f"it, else '{SHARPENS}'. A row counts only once its regime checks pass: D learns (held-out accuracy "
             f"on fresh real against fresh G samples above {D_CHANCE} after its pretraining and after the run, "
             f"per seed), β reached (the last inverse temperature of a relaxed method at or above "
             f"reproduce.beta_min), G moved (‖θ − θ₀‖ / ‖θ₀‖ over the adversarial phase above "
             f"{G_MOVED:g}).", ""]
    rep = plan.rep
    # a run's own control, else the file's for the runs on the shared pretraining (its model and
    # pretraining): none for a run that pretrains its own model and names no control of its own
    control_of = {name: rep.controls.get(name, "" if plan.standalone(name) else rep.control)
                  for name in plan.run_configs}
    every_control = {c for c in control_of.values() if c}
    control_frontiers = {c: read_frontiers(plan, c) for c in every_control}
    if every_control:
        held = [f"`{rep.control}` for the runs on the shared pretraining" if rep.control else ""]
        held += [f"`{c}` for `{name}`" for name, c in rep.controls.items()]
        lines += [f"A no-signal control is a run of a method's own model and pretraining with every reward 1: "
                  f"REINFORCE on G's own samples, which sharpens G context by context, as no single temperature "
                  f"does. The controls here: {', '.join(h for h in held if h)}. Each run's gap to its control is "
                  f"read the same way, off the control's frontier. A run that beats `{base}` but not its control "
                  f"beyond the interval is judged '{NO_SIGNAL}'.", ""]
    lines += ["| method | frontier gap | ± 95% | per seed | "
              + ("gap to its control | ± 95% | per seed | " if every_control else "")
              + "D held-out acc. (after pretraining; after the run) | β at the end | G moved | "
              "paper's schedule (fraction run) | verdict |",
              "|---|---|---|---|" + ("---|---|---|" if every_control else "") + "---|---|---|---|---|"]
    for name, cfg in plan.run_configs.items():
        regime = read_regime(plan, name)
        checks = regime_checks(plan, name, regime)
        gap = collect_gap(read_frontiers(plan, name), baselines) if name != base else None
        control = control_of[name]
        to_control = (collect_gap(read_frontiers(plan, name), control_frontiers[control])
                      if control and name != base and name not in every_control else None)
        if not regime.seeds:
            judged = "not run yet"
        elif name == base:
            judged = "the baseline"
        elif name not in plan.rep.frontier:
            judged = "no verdict: its frontier is not measured (add it to reproduce.frontier)"
        else:
            judged = judge(gap, checks, to_control)
        shown = gap_cell(gap, regime.seeds)
        if every_control:
            theirs = f" (to `{control}`)" if to_control is not None and control != rep.control else ""
            shown += f" | {gap_cell(to_control, regime.seeds)}{theirs}"
        schedule = plan.rep.paper_schedule.get(name, "")
        if name in plan.rep.paper_iterations:
            schedule += f" ({cfg.train.adv_iterations / plan.rep.paper_iterations[name]:.0%} of its iterations)"
        lines.append(f"| {_label(name, cfg)} | {shown} | {checks[0].shown} | {checks[1].shown} | {checks[2].shown} | "
                     f"{schedule} | {judged} |")
    return lines + [""]
