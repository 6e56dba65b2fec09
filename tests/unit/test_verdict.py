"""The family report's judgement against MLE: the frontier gap, its interval, the verdict, the regime checks."""

import math

import pytest
import torch

from seqgan_ray.experiments.frontier import FrontierPoint, baseline_at, frontier_gap
from seqgan_ray.experiments.verdict import (BEATS, NO_SIGNAL, SHARPENS, WORSE, Gap, beta_reached, collect_gap, d_learns,
                                            g_moved, judge, seed_gap, verdict)
from seqgan_ray.trainer import generator_own, relative_change

# MLE's frontier: NLL-test 6.0 -> 7.0 as τ falls, NLL-oracle 9.5 -> 8.5; each ± 0.02.
MLE = [FrontierPoint(1.2, 6.0, 9.5, 0.02), FrontierPoint(1.0, 6.5, 9.0, 0.02), FrontierPoint(0.8, 7.0, 8.5, 0.04)]


def test_interpolation_reads_the_baseline_at_the_same_nll_test():
    assert baseline_at(MLE, 6.25) == pytest.approx((9.25, 0.02))
    # between τ 1.0 and 0.8: three quarters of the way, and so the half-widths
    assert baseline_at(MLE, 6.875) == pytest.approx((8.625, 0.035))
    assert baseline_at(list(reversed(MLE)), 6.25) == pytest.approx((9.25, 0.02))  # order of τ does not matter
    assert baseline_at(MLE, 5.9) is None and baseline_at(MLE, 7.1) is None      # never extrapolated


def test_the_baseline_is_read_on_its_efficient_branch_only():
    """NLL-test is lowest near τ = 1 and rises on both sides; above that turn a temperature is
    worse on both counts, so a run is never measured against it (measured: a MaskGAN run's
    NLL-test 7.864 was read off MaskMLE's τ 1.3-1.5 points, a gap of -0.33 that was not there)."""
    u = [FrontierPoint(0.8, 7.883, 9.951, 0.05), FrontierPoint(0.9, 7.838, 10.086, 0.05),
         FrontierPoint(1.0, 7.822, 10.234, 0.05), FrontierPoint(1.3, 7.845, 10.513, 0.05),
         FrontierPoint(1.5, 7.881, 10.655, 0.05)]
    oracle, _ = baseline_at(u, 7.864)
    assert oracle == pytest.approx(9.951 + (10.086 - 9.951) * (7.883 - 7.864) / (7.883 - 7.838))
    assert baseline_at(u, 7.80) is None  # better coverage than any temperature of the baseline's
    run = [FrontierPoint(1.0, 7.864, 10.259, 0.05)]
    assert seed_gap(run, u)[0] == pytest.approx(10.259 - oracle)
    assert frontier_gap(run, u) == [(1.0, pytest.approx(10.259 - oracle))]


def test_a_seeds_gap_is_the_runs_tau_1_point_against_the_baseline():
    run = [FrontierPoint(0.8, 7.4, 8.0, 0.05), FrontierPoint(1.0, 6.75, 8.55, 0.03)]
    gap, ci = seed_gap(run, MLE)
    assert gap == pytest.approx(8.55 - 8.75) and ci == pytest.approx(math.hypot(0.03, 0.03))
    assert seed_gap([FrontierPoint(0.9, 6.75, 8.5, 0.03)], MLE) is None   # no τ = 1 point
    assert seed_gap([FrontierPoint(1.0, 7.5, 8.0, 0.03)], MLE) is None    # beyond MLE's frontier


def test_the_gap_interval_is_over_seeds_from_three_on():
    runs = {s: [FrontierPoint(1.0, 6.5, 9.0 + d, 0.01)] for s, d in [(0, -0.1), (1, -0.2), (2, -0.3)]}
    gap = collect_gap(runs, {0: MLE, 1: MLE, 2: MLE})
    assert gap.per_seed == pytest.approx([-0.1, -0.2, -0.3]) and gap.over_seeds
    assert gap.mean == pytest.approx(-0.2) and gap.ci == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    two = collect_gap(runs, {0: MLE, 1: MLE})   # a seed whose baseline is missing is left out
    assert two.per_seed == pytest.approx([-0.1, -0.2]) and two.seeds == [0, 1] and not two.over_seeds
    assert two.ci == pytest.approx(math.hypot(math.hypot(0.01, 0.02), math.hypot(0.01, 0.02)) / 2)
    assert collect_gap(runs, {5: MLE}) is None


@pytest.mark.parametrize("per_seed, expected", [
    ([-0.30, -0.25, -0.35], BEATS),     # below 0 beyond the interval
    ([-0.30, 0.25, 0.05], SHARPENS),    # the interval holds 0
    ([0.20, 0.25, 0.30], WORSE),        # above 0 beyond it
])
def test_the_verdict_follows_the_gaps_interval(per_seed, expected):
    assert verdict(Gap(per_seed, [0.01] * 3, [0, 1, 2])) == expected


def test_regime_checks():
    assert d_learns([0.80, 0.90], [0.70, 0.60], pretrains_d=True).ok is True
    assert d_learns([0.80, 0.90], [0.70, 0.52], pretrains_d=True).ok is False      # at chance at the end
    assert d_learns([0.50], [0.70], pretrains_d=True).ok is False                 # at chance after pretraining
    no_d_pretraining = d_learns([0.50], [0.70], pretrains_d=False)                 # RelGAN: none to check
    assert no_d_pretraining.ok is True and "no D pretraining" in no_d_pretraining.shown
    assert d_learns([None], [None], pretrains_d=True).ok is None                   # MLE trains no D
    # memorising: far above chance on its training sequences, at chance on fresh ones; shown beside
    memorises = d_learns([0.52], [0.53], pretrains_d=True, trainset=[0.71])
    assert memorises.ok is False and memorises.shown == "0.52; 0.53 (training sequences: 0.71)"
    assert beta_reached([16.0, 15.9], 15.0).ok is True
    assert beta_reached([16.0, 3.0], 15.0).ok is False
    assert beta_reached([None], None).ok is None and beta_reached([16.0], None).ok is None
    assert g_moved([0.02, 0.01]).ok is True and g_moved([0.02, 0.0]).ok is False and g_moved([None]).ok is None


def test_a_failed_regime_check_replaces_the_verdict():
    gap = Gap([-0.3, -0.3, -0.3], [0.01] * 3, [0, 1, 2])
    assert judge(gap, [d_learns([0.9], [0.9], pretrains_d=True), g_moved([0.1])]) == BEATS
    text = judge(gap, [d_learns([0.9], [0.5], pretrains_d=True), g_moved([0.0])])
    assert text == "no verdict: regime check failed (D learns, G moved)"
    assert judge(None, [g_moved([0.1])]).startswith("no verdict yet")


def test_relative_change_of_the_generators_weights():
    old = {"w": torch.ones(4), "steps": torch.tensor(3)}
    assert relative_change({"w": torch.ones(4), "steps": torch.tensor(9)}, old) == 0.0  # integers not counted
    moved = {"w": torch.tensor([1.0, 1.0, 1.0, 2.0]), "steps": torch.tensor(3)}
    assert relative_change(moved, old) == pytest.approx(0.5)


def test_leakgans_copy_of_d_is_not_gs_own_weights():
    """LeakGAN's G carries a frozen copy of D (leak.*) that each D round rewrites: not G moving."""
    old = {"worker.w": torch.ones(4), "leak.w": torch.ones(4)}
    new = {"worker.w": torch.ones(4), "leak.w": torch.full((4,), 5.0)}
    assert relative_change(generator_own(new), generator_own(old)) == 0.0


def test_a_run_that_beats_mle_but_not_the_no_signal_control_is_judged_by_the_control():
    """Measured on the family tier (seed 0): SeqGAN's gap to MLE -0.222, REINFORCE with every
    reward 1 -0.224; SeqGAN's gap to that control is then about 0, and the verdict says so."""
    beats = Gap([-0.22, -0.21, -0.23], [0.02] * 3, [0, 1, 2])
    assert judge(beats, [g_moved([0.1])]) == BEATS
    assert judge(beats, [g_moved([0.1])], Gap([0.01, -0.01, 0.0], [0.02] * 3, [0, 1, 2])) == NO_SIGNAL
    assert judge(beats, [g_moved([0.1])], Gap([-0.1, -0.11, -0.09], [0.02] * 3, [0, 1, 2])) == BEATS


def _finished(folder, frontier):
    """A run's folder as a finished run leaves it: its summary, metrics and frontier.csv."""
    import json

    from seqgan_ray.experiments.frontier import frontier_csv

    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({}))
    (folder / "metrics.jsonl").write_text(json.dumps({"phase": "adversarial", "gen/param_change": 0.01}) + "\n")
    (folder / "frontier.csv").write_text(frontier_csv({folder.name: frontier}))


def test_a_run_is_held_to_its_own_control_where_reproduce_controls_names_one(tmp_path):
    """LeakGAN's no-signal control has LeakGAN's model and pretraining: reproduce.controls holds
    it to that one, the others to reproduce.control; the controls themselves to none."""
    from seqgan_ray.experiments.reproduce import load_plan
    from seqgan_ray.experiments.verdict import against_baseline_section
    from tests.helpers import reproduce_file

    runs = {"mle": {"train.method": "mle"}, "seqgan": {}, "constant": {"rollout.reward": "constant"},
            "leak": {}, "leak_constant": {"rollout.reward": "constant"}}
    runs["own"] = {}   # pretrains its own model and names no control: held to none
    path = reproduce_file(tmp_path, runs, seeds=[0], frontier=list(runs), control="constant",
                          controls={"leak": "leak_constant"}, standalone=["leak", "leak_constant", "own"])
    plan = load_plan(path)
    shift = lambda d: [p._replace(oracle_nll=p.oracle_nll + d) for p in MLE]   # noqa: E731
    for name, d in {"mle": 0.0, "seqgan": -0.3, "constant": -0.3, "leak": -0.3, "leak_constant": 0.0,
                    "own": -0.3}.items():
        _finished(plan.folder(0) / name, shift(d))
    lines = against_baseline_section(plan)
    assert any("`constant` for the runs on the shared pretraining, `leak_constant` for `leak`" in line for line in lines)
    rows = {l.split(" | ")[0][2:]: l.split(" | ") for l in lines if l.startswith("| ") and not l.startswith("| method")}
    rows["leak"], rows["own"] = rows.pop("SeqGAN (`leak`)"), rows.pop("SeqGAN (`own`)")
    # SeqGAN: -0.3 from MLE and 0 from its control, so no better than it; LeakGAN: -0.3 from both
    assert float(rows["SeqGAN"][1]) == pytest.approx(-0.3) and float(rows["SeqGAN"][4]) == pytest.approx(0.0)
    assert rows["SeqGAN"][-1] == NO_SIGNAL + " |"
    leak = rows["leak"]
    assert float(leak[4]) == pytest.approx(-0.3) and leak[6].endswith("(to `leak_constant`)")
    assert leak[-1] == BEATS + " |"
    assert rows["constant"][4] == "" and rows["leak_constant (`leak_constant`)"][4] == ""   # none for a control
    assert rows["own"][4] == "" and rows["own"][-1] == BEATS + " |"   # its own model: no control to hold it to


@pytest.mark.parametrize("controls, message", [
    ({"nope": "constant"}, "reproduce.controls: 'nope' is not one of reproduce.runs"),
    ({"seqgan": "nope"}, "reproduce.controls.seqgan: 'nope' must be another run"),
    ({"seqgan": "seqgan"}, "reproduce.controls.seqgan: 'seqgan' must be another run"),
])
def test_a_control_that_is_not_another_measured_run_is_refused(tmp_path, controls, message):
    from seqgan_ray.config import ConfigError
    from seqgan_ray.experiments.reproduce import load_plan
    from tests.helpers import reproduce_file

    runs = {"mle": {"train.method": "mle"}, "seqgan": {}, "constant": {"rollout.reward": "constant"}}
    path = reproduce_file(tmp_path, runs, frontier=list(runs), controls=controls)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_plan(path)
