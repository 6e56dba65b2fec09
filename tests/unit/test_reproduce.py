"""`run.py reproduce`: the reproduce file, its errors, and the report."""

import pytest

from seqgan_ray.config import ConfigError
from seqgan_ray.experiments.report import Outcome, render, verdict
from seqgan_ray.experiments.reproduce import load_plan
from tests.helpers import reproduce_file


@pytest.mark.parametrize("section, message", [
    ({"runs": {}}, "reproduce.runs is empty"),
    ({"runs": {"mle": {"train.method": "mle"}}, "colour": 1}, "unknown config key 'reproduce.colour'"),
    ({"runs": {"mle": {"train.pretrain_g_epochs": 3}}}, "changes the generator's pretraining"),
    ({"runs": {"mle": {"train.method": "mel"}}}, "train.method"),
    ({"runs": {"mle": {"rollout.num_rolouts": 3}}}, "did you mean 'rollout.num_rollouts'"),
    ({"runs": {"seqgan": {}}}, "reproduce.baseline 'mle' is not one of reproduce.runs"),
    ({"runs": {"mle": {"train.method": "mle"}}, "repeat": ["seqgan"]}, "reproduce.repeat: 'seqgan'"),
    ({"runs": {"mle": {"train.method": "mle"}}, "beta_min": {"relgan": 15.0}}, "reproduce.beta_min: 'relgan'"),
    ({"runs": {"mle": {"train.method": "mle"}, "c": {}}, "control": "c"}, "reproduce.control 'c' must be one of"),
    ({"runs": {"mle": {"train.method": "mle"}}, "paper_iterations": {"mle": 0}}, "paper_iterations.mle: give a number"),
    ({"runs": {"mle": {"train.method": "mle"}, "a": {}, "b": {}}, "standalone": ["a"], "pretrained_by": {"b": "a"}},
     "pretrained_by.b: both 'b' and 'a' must be in reproduce.standalone"),
    ({"runs": {"mle": {"train.method": "mle"}, "a": {}, "b": {"train.pretrain_g_epochs": 3}}, "standalone": ["a", "b"],
      "pretrained_by": {"b": "a"}},
     "'b' has train.pretrain_g_epochs=3 and 'a' 2: a run starts from another's pretraining"),
])
def test_reproduce_file_errors_name_the_key(tmp_path, section, message):
    path = reproduce_file(tmp_path, **section)
    with pytest.raises(ConfigError, match=message):
        load_plan(path)


def test_overrides_reach_the_reproduce_section(tmp_path):
    path = reproduce_file(tmp_path, {"mle": {"train.method": "mle"}})
    plan = load_plan(path, ["generator.shuffle=false", "reproduce.out_dir=elsewhere", "reproduce.seeds=[3, 4]"])
    assert plan.rep.out_dir == "elsewhere" and plan.rep.seeds == [3, 4]
    assert plan.base.generator.shuffle is False and plan.run_configs["mle"].generator.shuffle is False
    report = render(plan, {}, "figure.png", "python run.py reproduce ...")
    assert "(below, as read), with `generator.shuffle=false reproduce.out_dir=elsewhere" in report
    with pytest.raises(ConfigError, match="override: unknown config key 'reproduce.out_dri'; did you mean 'reproduce.out_dir'"):
        load_plan(path, ["reproduce.out_dri=x"])


def test_no_reproduce_section(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text("train: {adv_iterations: 2}\n")
    with pytest.raises(ConfigError, match="no 'reproduce:' section"):
        load_plan(path)


def test_the_bar_compares_a_run_with_the_baseline_on_its_own_seeds(tmp_path):
    path = reproduce_file(tmp_path, {"seqgan": {}, "seqgan_b": {"rollout.update_rate": 0.0}, "mle": {"train.method": "mle"}},
                 seeds=[0, 1], repeat=["seqgan", "mle"])
    plan = load_plan(path)
    rows = {"seqgan": Outcome([8.70, 8.80], [0.01, 0.01], [1.0, 1.0], seeds=[0, 1]),
            "seqgan_b": Outcome([8.74], [0.01], [1.0], seeds=[0]),       # trained on the first seed only
            "mle": Outcome([8.75, 9.25], [0.01, 0.01], [1.0, 1.0], seeds=[0, 1])}
    lines = verdict(plan, rows)
    # Two seeds against the baseline's two: 8.750 against 9.000.
    assert lines[0].startswith("- `seqgan` (rollout.update_rate=0.8) (seeds 0, 1): 8.750 ± 0.007, above")
    assert "0.250 below `mle` on the same seeds (9.000)" in lines[0] and "is supported" in lines[0]
    # One seed against the baseline's same seed (8.75), not its two-seed mean (9.00).
    assert lines[1].startswith("- `seqgan_b` (rollout.update_rate=0.0) (seed 0): 8.740 ± 0.010, at or below")
    assert "0.010 below `mle` on the same seeds (8.750)" in lines[1] and "**not** supported" in lines[1]
    # A baseline that has not finished every seed of a run yet: no verdict for that run.
    rows["mle"] = rows["mle"].on([0])
    assert [l.split("`")[1] for l in verdict(plan, rows)] == ["seqgan_b"]


def test_a_paper_note_stands_beside_the_bar(tmp_path):
    """reproduce.paper_notes: a sentence beside a run's bar, before and after it is checked
    (RelGAN's 6.680 was measured on its own oracle); a note for a run not in the file is refused."""
    note = "Measured on RelGAN's own seeded oracle, not SeqGAN's."
    path = reproduce_file(tmp_path, {"seqgan": {}, "mle": {"train.method": "mle"}}, bars={"seqgan": 7.0},
                          paper_notes={"seqgan": note})
    plan = load_plan(path)
    assert note in verdict(plan, {})[0]
    rows = {"seqgan": Outcome([8.70], [0.01], [1.0], seeds=[0]), "mle": Outcome([9.0], [0.01], [1.0], seeds=[0])}
    assert verdict(plan, rows)[0].endswith(note)
    with pytest.raises(ConfigError, match="paper_notes: 'relgan'"):
        load_plan(reproduce_file(tmp_path, {"seqgan": {}, "mle": {"train.method": "mle"}},
                                 paper_notes={"relgan": note}))


def test_the_laptop_tier_scales_only_what_its_rules_allow():
    """configs/reproduce_family.yaml against the paper-scale files: each run keeps its models'
    families, loss, step ratio, rates and schedule; only D's filter counts, the negatives per
    round, the iterations (and their evaluation and checkpoint spacing), RelGAN's G width,
    LeakGAN's and RelGAN's MLE epochs (halved) and LeakGAN's D pretraining rounds (more rounds of
    fewer negatives, no more negatives in all than the reference's) differ, and RelGAN's β still
    ends at 100^0.6."""
    from tests.helpers import ROOT

    family = load_plan(ROOT / "configs" / "reproduce_family.yaml")
    relaxed = load_plan(ROOT / "configs" / "reproduce_relaxed.yaml")
    leakgan = load_plan(ROOT / "configs" / "reproduce_leakgan.yaml")
    scaled = {"discriminator.filter_sizes", "discriminator.num_filters", "train.num_negatives", "train.num_real",
              "train.adv_iterations", "train.eval_every", "train.checkpoint_every"}
    paper = {"mle": (relaxed, "mle", set()), "seqgan": (relaxed, "seqgan", set()), "gsgan": (relaxed, "gsgan", set()),
             "leakgan": (leakgan, "leakgan", {"train.pretrain_g_epochs", "train.pretrain_d_rounds"}),
             "leakgan_constant": (leakgan, "leakgan", {"train.pretrain_g_epochs", "train.pretrain_d_rounds",
                                                       "rollout.reward"}),  # its control
             "leakgan_reference": (leakgan, "leakgan", {"train.pretrain_g_epochs", "train.pretrain_d_rounds",
                                                        "leakgan.rescale", "leakgan.cosine"}),
             "relgan": (relaxed, "relgan",
                        {"generator.head_size", "relaxed.temperature_steps", "train.pretrain_g_epochs"}),
             "textgan_mmd": (relaxed, "textgan_mmd", set()), "textgan_mean": (relaxed, "textgan_mean", set()),
             # SeqGAN with MaskGAN's critic for the rollouts: seqgan's settings but for the estimator
             "seqgan_critic": (relaxed, "seqgan", {"rollout.estimator", "rollout.critic_steps"}),
             "seqgan_constant": (relaxed, "seqgan", {"rollout.reward"})}  # the no-signal control
    assert set(family.run_configs) == set(paper)
    for name, (plan, theirs, allowed) in paper.items():
        ours, full = family.run_configs[name].to_dict(), plan.run_configs[theirs].to_dict()
        differs = {f"{s}.{k}" for s, values in ours.items() if s != "run" for k, v in values.items() if full[s][k] != v}
        assert differs <= scaled | allowed, (name, differs - scaled - allowed)
        assert ours["train"]["adv_iterations"] <= family.rep.paper_iterations[name]
        if "train.pretrain_d_rounds" in differs:   # D pretraining sees no more negatives than the reference's
            assert (ours["train"]["pretrain_d_rounds"] * ours["train"]["num_negatives"]
                    <= full["train"]["pretrain_d_rounds"] * full["train"]["num_negatives"]), name
    ref = family.run_configs["leakgan_reference"].leakgan
    assert (ref.rescale, ref.cosine, ref.temperature_trick) == ("reference", "batch_mean", 1.0)
    relgan = family.run_configs["relgan"]
    assert relgan.train.adv_iterations / relgan.relaxed.temperature_steps == pytest.approx(3000 / 5000)


def test_metrics_columns_show_the_mean_and_a_t_interval_over_seeds(tmp_path):
    """reproduce.metrics: more of the last evaluation's metrics as columns (MaskGAN's in-fills);
    a name that is not an evaluation metric is refused."""
    path = reproduce_file(tmp_path, {"mle": {"train.method": "mle"}}, seeds=[0, 1, 2],
                          metrics=["eval/infill_oracle_nll"])
    plan = load_plan(path)
    extra = [{"eval/infill_oracle_nll": v} for v in (8.0, 8.2, 8.4)]
    rows = {"mle": Outcome([9.0, 9.1, 9.2], [0.01] * 3, [1.0] * 3, nll_test=[6.0] * 3, where=["CPU"] * 3,
                           seeds=[0, 1, 2], extra=extra)}
    report = render(plan, rows, "figure.png", "python run.py reproduce ...")
    header = next(line for line in report.splitlines() if line.startswith("| method |"))
    assert "| eval/infill_oracle_nll |" in header
    mle = next(line for line in report.splitlines() if line.startswith("| MLE |"))
    assert f"| 8.200 ± {4.303 * 0.2 / 3 ** 0.5:.3f}ᵗ |" in mle
    assert len(mle.split("|")) == len(header.split("|"))
    with pytest.raises(ConfigError, match="reproduce.metrics: 'infill_oracle_nll' is not an evaluation metric"):
        load_plan(reproduce_file(tmp_path, {"mle": {"train.method": "mle"}}, metrics=["infill_oracle_nll"]))
