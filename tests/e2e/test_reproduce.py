"""`run.py reproduce` end to end: one pretraining shared by the runs, resuming, extending, the report."""

import json
import shutil

import torch
import yaml

from seqgan_ray.cli import main
from seqgan_ray.experiments.report import NOTES_MARKER, figure2_curves
from seqgan_ray.experiments.reproduce import load_plan, waiting_on
from tests.helpers import reproduce_file


def test_reproduce_runs_share_pretraining_resume_and_report(tmp_path, capsys):
    runs = {"seqgan": {}, "mle": {"train.method": "mle"}}
    path = reproduce_file(tmp_path, runs)
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 0
    out = tmp_path / "runs" / "seed0"
    pre = json.loads((out / "pretrain" / "summary.json").read_text())
    for name in runs:
        summary = json.loads((out / name / "summary.json").read_text())
        # Every run starts from the shared pretraining: the same NLL-oracle after it.
        assert summary["oracle_nll_after_pretraining"] == pre["oracle_nll_after_pretraining"]
        assert summary["oracle_nll_after_adversarial"] > 0
    report = (tmp_path / "doc" / "synthetic.md").read_text()
    assert "| SeqGAN | 8.736 |" in report and "| MLE | 9.038 |" in report and "| Random | 10.31 |" in report
    assert "seeded N(0, 1) oracle" in report and (tmp_path / "doc" / "synthetic_figure2.png").stat().st_size > 0
    assert "- `seqgan` (rollout.update_rate=0.8) (seed 0): " in report and "the bar of 8.74" in report
    assert "| NLL-test |" in report
    assert NOTES_MARKER in report

    # Notes below the marker survive; a new run is added, the finished ones are skipped.
    (tmp_path / "doc" / "synthetic.md").write_text(report + "\nWhat we tried: nothing yet.\n")
    runs["scheduled_sampling"] = {"train.method": "scheduled_sampling"}
    path = reproduce_file(tmp_path, runs)
    before = (out / "seqgan" / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 0
    err = capsys.readouterr().err
    assert "seqgan: done" in err and "pretraining: done" in err and "scheduled_sampling: starting" in err
    assert (out / "seqgan" / "metrics.jsonl").read_text() == before
    report = (tmp_path / "doc" / "synthetic.md").read_text()
    assert "| Scheduled Sampling | 8.985 |" in report and "What we tried: nothing yet." in report

    # An interrupted run (checkpoints, no summary) is reported as in progress, and resumes
    # where it stopped.
    (out / "mle" / "summary.json").unlink()
    assert main(["reproduce", "--config", str(path), "--no-ray", "--report-only"]) == 0
    line = next(l for l in (tmp_path / "doc" / "synthetic.md").read_text().splitlines() if l.startswith("| MLE |"))
    assert "| in progress: iteration 2 of 2; " in line and " at iteration 2 |" in line
    curves = figure2_curves(load_plan(path))  # drawn as far as it has got
    assert set(curves) == {"MLE pretraining", "seqgan", "scheduled_sampling", "mle (in progress)"}
    assert curves["mle (in progress)"][0] == [2, 3, 4]  # from the end of pretraining, epoch by epoch
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 0
    assert "mle: resuming" in capsys.readouterr().err

    # Pretraining that no longer matches the file is refused, naming the key.
    data = yaml.safe_load(path.read_text())
    data["train"]["pretrain_g_epochs"] = 3
    path.write_text(yaml.safe_dump(data))
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 2
    assert "pretrain was trained with train.pretrain_g_epochs=2" in capsys.readouterr().err


def test_runs_side_by_side_with_their_frontiers_best_evaluation_and_the_papers_random(tmp_path, capsys):
    """--jobs 2: the runs train in their own processes after the shared pretraining; each
    listed run's frontier is measured when it finishes and shown in the report, beside the
    best evaluation (labelled) and Random as the paper defined it (after one epoch)."""
    from seqgan_ray.experiments.frontier import read_frontier
    from seqgan_ray.runlog import read_metrics

    path = reproduce_file(tmp_path, {"seqgan": {}, "mle": {"train.method": "mle"}}, frontier=["seqgan", "mle"],
                 temperatures=[0.8, 1.0, 1.25])
    assert main(["reproduce", "--config", str(path), "--jobs", "2"]) == 2  # needs --no-ray
    assert "--jobs N trains each run in its own process without Ray: add --no-ray" in capsys.readouterr().err
    assert main(["reproduce", "--config", str(path), "--no-ray", "--seeds", "7"]) == 2
    assert "--seeds 7: 7 is not a seed of" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()

    assert main(["reproduce", "--config", str(path), "--no-ray", "--jobs", "2"]) == 0
    err = capsys.readouterr().err
    out = tmp_path / "runs" / "seed0"
    for name in ("seqgan", "mle"):
        assert f"seed 0: {name} started in its own process" in err and f"seed 0: {name} finished" in err
        assert "the quality-diversity frontier" in (out / f"{name}.log").read_text()
        points = read_frontier(out / name / "frontier.csv")[name]
        assert [p.temperature for p in points] == [0.8, 1.0, 1.25]
    report = (tmp_path / "doc" / "synthetic.md").read_text()
    assert "## Quality against diversity" in report and (tmp_path / "doc" / "synthetic_frontier.png").is_file()
    assert "| seqgan | 1.25 |" in report and "| mle | 0.8 |" in report

    first = [r for r in read_metrics(out / "pretrain" / "metrics.jsonl") if r.get("epoch") == 1 and "eval/oracle_nll" in r]
    random = next(l for l in report.splitlines() if l.startswith("| Random |"))
    assert f"| {first[0]['eval/oracle_nll']:.3f} |" in random and "after epoch 1 (the paper's Random)" in random
    evals = [r["eval/oracle_nll"] for r in read_metrics(out / "seqgan" / "metrics.jsonl")
             if r["phase"] == "adversarial" and "eval/oracle_nll" in r]
    seqgan = next(l for l in report.splitlines() if l.startswith("| SeqGAN |")).split(" | ")
    assert seqgan[2] == f"{evals[-1]:.3f}"  # ours: the last evaluation
    assert seqgan[5] == f"{min(evals):.3f} ({1 + evals.index(min(evals))})"  # the best, labelled apart


def test_a_run_may_pretrain_its_own_discriminator(tmp_path, capsys):
    from seqgan_ray.runlog import read_metrics

    runs = {"mle": {"train.method": "mle"},
            "seqgan_paper_d": {"train.pretrain_d_rounds": 3, "train.pretrain_d_epochs": 2}}
    path = reproduce_file(tmp_path, runs)
    data = yaml.safe_load(path.read_text())
    data["train"]["keep_checkpoints"] = 1  # the shared G checkpoint must survive pruning all the same
    path.write_text(yaml.safe_dump(data))
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 0
    out = tmp_path / "runs" / "seed0"
    # Its D pretraining started from the shared pretrained G (which D pretraining leaves as it is).
    shared = torch.load(out / "pretrain" / "checkpoints" / "pretrain_g_000002.pt", weights_only=True)
    own = torch.load(out / "seqgan_paper_d" / "checkpoints" / "pretrain_d_000003.pt", weights_only=True)
    for key, value in shared["learner"]["generator"].items():
        assert torch.equal(value, own["learner"]["generator"][key]), key
    metrics = read_metrics(out / "seqgan_paper_d" / "metrics.jsonl")
    assert [m["step"] for m in metrics if m["phase"] == "pretrain_d"] == [1, 2, 3]  # its own D pretraining
    assert {m["phase"] for m in read_metrics(out / "mle" / "metrics.jsonl")} == {"adversarial"}

    # A shared pretraining without its G checkpoint is named, with the fix.
    (out / "pretrain" / "checkpoints" / "pretrain_g_000002.pt").unlink()
    shutil.rmtree(out / "seqgan_paper_d")
    capsys.readouterr()
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 2
    assert "pretrain_g_000002.pt is missing" in capsys.readouterr().err


def test_runs_option_trains_only_the_named_runs(tmp_path, capsys):
    path = reproduce_file(tmp_path, {"seqgan": {}, "mle": {"train.method": "mle"}})
    assert main(["reproduce", "--config", str(path), "--no-ray", "--runs", "seqgn"]) == 2
    assert "'seqgn' is not a run of" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    assert main(["reproduce", "--config", str(path), "--no-ray", "--runs", ""]) == 2  # not "every run"
    assert "'' is not a run of" in capsys.readouterr().err
    assert main(["reproduce", "--config", str(path), "--no-ray", "--runs", "mle"]) == 0
    out = tmp_path / "runs" / "seed0"
    assert (out / "mle" / "summary.json").is_file() and not (out / "seqgan").exists()
    line = next(l for l in (tmp_path / "doc" / "synthetic.md").read_text().splitlines() if l.startswith("| SeqGAN |"))
    assert "| not run yet |" in line


def test_background_runs_detached_and_logs(tmp_path, capsys):
    import time

    path = reproduce_file(tmp_path, {"mle": {"train.method": "mle"}})
    assert main(["reproduce", "--config", str(path), "--no-ray", "--background"]) == 0
    assert "started in the background" in capsys.readouterr().err
    report, log = tmp_path / "doc" / "synthetic.md", tmp_path / "runs" / "reproduce.log"
    deadline = time.monotonic() + 120
    while not report.is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert report.is_file(), log.read_text() if log.is_file() else "no log"
    assert "seed 0: mle: starting" in log.read_text()


def test_second_seed_repeats_only_the_named_runs(tmp_path):
    runs = {"mle": {"train.method": "mle"}, "pg_bleu": {"rollout.reward": "bleu"}}
    path = reproduce_file(tmp_path, runs, seeds=[0, 1], repeat=["mle"])
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 0
    out = tmp_path / "runs"
    assert (out / "seed1" / "mle" / "summary.json").is_file() and not (out / "seed1" / "pg_bleu").exists()
    s0, s1 = (json.loads((out / f"seed{k}" / "mle" / "summary.json").read_text()) for k in (0, 1))
    assert s0["oracle_nll_after_adversarial"] != s1["oracle_nll_after_adversarial"]  # seeds differ
    report = (tmp_path / "doc" / "synthetic.md").read_text()
    line = next(l for l in report.splitlines() if l.startswith("| MLE | 9.038"))
    mean = (s0["oracle_nll_after_adversarial"] + s1["oracle_nll_after_adversarial"]) / 2
    assert f"| {mean:.3f} |" in line and f"{s0['oracle_nll_after_adversarial']:.3f} / " in line
    assert "(seeds after the first: mle only)" in report

    # Seeds that ran on different machines: the wall time of each, marked with where it ran
    # (summary.json's devices). NLL-test reads the run's generator.pt, so the heavy
    # checkpoints need not come along from the other machine.
    summary = out / "seed1" / "mle" / "summary.json"
    summary.write_text(json.dumps({**s1, "devices": {"learner": "cuda:0", "discriminator": "cuda:0",
                                                     "rollout": ["cuda:0"]}}))
    shutil.rmtree(out / "seed1" / "mle" / "checkpoints")
    assert main(["reproduce", "--config", str(path), "--no-ray", "--report-only"]) == 0
    line = next(l for l in (tmp_path / "doc" / "synthetic.md").read_text().splitlines()
                if l.startswith("| MLE | 9.038"))
    assert " s (CPU) / " in line and " s (GPU) |" in line
    assert line.split("|")[6].strip() not in ("", "nan")  # NLL-test, from seed1's generator.pt


def test_finished_runs_are_extended_and_changed_ones_refused(tmp_path, capsys):
    from seqgan_ray.runlog import read_metrics

    path = reproduce_file(tmp_path, {"mle": {"train.method": "mle"}})
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 0
    run = tmp_path / "runs" / "seed0" / "mle"
    data = yaml.safe_load(path.read_text())
    data["train"]["adv_iterations"] = 3
    path.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 0
    assert "mle: extending" in capsys.readouterr().err
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if "gen/mle_nll" in r]
    assert steps == [1, 2, 3]
    assert json.loads((run / "summary.json").read_text())["oracle_nll_after_adversarial"] > 0
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["adv_iterations"] == 3

    data["reproduce"]["runs"]["mle"] = {"train.method": "scheduled_sampling"}
    path.write_text(yaml.safe_dump(data))
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 2
    assert "was trained with train.method='mle'" in capsys.readouterr().err


def test_a_standalone_run_pretrains_on_its_own_and_the_file_names_the_papers_numbers(tmp_path, capsys):
    """LeakGAN beside MLE: another model, so its own pretraining (reproduce.standalone); the
    published numbers, the bar and the columns come from the file; the time table is written."""
    from seqgan_ray.runlog import read_metrics

    runs = {"mle": {"train.method": "mle"},
            "leakgan": {"train.method": "leakgan", "generator.kind": "leakgan", "rollout.stride": 4,
                        "rollout.update_rate": 0.0, "leakgan.pretrain_rounds": 1}}
    path = reproduce_file(tmp_path, runs, standalone=["leakgan"], title="LeakGAN",
                          paper={"mle": 9.038, "leakgan": 7.038}, bars={"leakgan": 7.10},
                          columns=["data.seq_len", "leakgan.temperature_trick"])
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 0
    out = tmp_path / "runs" / "seed0"
    phases = [m["phase"] for m in read_metrics(out / "leakgan" / "metrics.jsonl")]
    assert phases[0] == "pretrain_g" and "pretrain_d" in phases and phases[-1] == "adversarial"  # from scratch
    assert {m["phase"] for m in read_metrics(out / "mle" / "metrics.jsonl")} == {"adversarial"}  # shared
    report = (tmp_path / "doc" / "synthetic.md").read_text()
    assert report.startswith("# LeakGAN\n")
    assert "| method | T | temperature trick | paper | ours |" in report
    assert "| LeakGAN | 8 | 1.0 | 7.038 |" in report and "| MLE | 8 | – | 9.038 |" in report
    line = next(l for l in report.splitlines() if l.startswith("| LeakGAN |"))
    assert "own pretraining: the shared sections with " in line and "train.method=leakgan" in line
    assert "- `leakgan` (train.method=leakgan) (seed 0): " in report and "the bar of 7.1 (paper: 7.038)" in report
    assert "## Where an iteration's time goes" in report and "| `leakgan` | 2 |" in report
    curves = figure2_curves(load_plan(path))
    assert "leakgan, own pretraining" in curves and curves["leakgan, own pretraining"][0][0] == 1


def test_only_standalone_runs_may_name_a_config_or_change_pretraining(tmp_path):
    import pytest

    from seqgan_ray.config import ConfigError

    with pytest.raises(ConfigError, match="'config' is for a run in reproduce.standalone"):
        load_plan(reproduce_file(tmp_path, {"mle": {"train.method": "mle", "config": "x.yaml"}}))
    with pytest.raises(ConfigError, match="unless reproduce.standalone names it"):
        load_plan(reproduce_file(tmp_path, {"mle": {"train.method": "mle"}, "big": {"generator.hidden_dim": 9}}))
    plan = load_plan(reproduce_file(tmp_path, {"mle": {"train.method": "mle"}, "big": {"generator.hidden_dim": 9}},
                                    standalone=["big"]))
    assert plan.standalone("big") and plan.run_configs["big"].generator.hidden_dim == 9
    with pytest.raises(ConfigError, match="reproduce.columns: 'data.seqlen' is not a config key"):
        load_plan(reproduce_file(tmp_path, {"mle": {"train.method": "mle"}}, columns=["data.seqlen"]))


def test_standalone_runs_alone_skip_the_shared_pretraining_and_a_handwritten_report_is_kept(tmp_path, capsys):
    """The relaxed GANs' file in small: TextGAN (its own latent-code generator, so standalone)
    trained alone with --runs does not pay for the shared pretraining it does not use; the report
    says how far a run still in its own pretraining has got, and keeps a report file written by
    hand (no notes marker) whole below the marker."""
    runs = {"mle": {"train.method": "mle"}, "seqgan": {},
            "textgan_mean": {"train.method": "textgan", "generator.kind": "latent_lstm", "textgan.match": "mean"}}
    path = reproduce_file(tmp_path, runs, standalone=["textgan_mean"], paper={"mle": 9.038},
                          columns=["data.seq_len", "textgan.match"])
    doc = tmp_path / "doc" / "synthetic.md"
    doc.parent.mkdir()
    doc.write_text("# What ran before\n\nA demo table we keep.\n")
    assert main(["reproduce", "--config", str(path), "--no-ray", "--runs", "textgan_mean"]) == 0
    assert "pretraining: not needed by textgan_mean" in capsys.readouterr().err
    out = tmp_path / "runs" / "seed0"
    assert not (out / "pretrain").exists() and (out / "textgan_mean" / "summary.json").is_file()
    report = doc.read_text()
    head, notes = report.split(NOTES_MARKER)
    assert "# What ran before\n\nA demo table we keep.\n" in notes
    assert "| method | T | match | paper | ours |" in head and "seeded N(0, 1) oracle" in head.split("\n")[2]
    line = next(l for l in head.splitlines() if l.startswith("| TextGAN (`textgan_mean`) |"))
    assert "| 8 | mean |  | " in line and "not run yet" not in line
    assert next(l for l in head.splitlines() if l.startswith("| MLE |")).startswith("| MLE | 8 | – | 9.038 | not run yet")
    assert set(figure2_curves(load_plan(path))) == {"textgan_mean, own pretraining"}

    # Stopped in its own pretraining (its metrics end in D's rounds): the row says where.
    metrics = out / "textgan_mean" / "metrics.jsonl"
    records = [json.loads(l) for l in metrics.read_text().splitlines()]
    cut = next(i for i, r in enumerate(records) if r["phase"] == "pretrain_d")
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records[: cut + 1]))
    (out / "textgan_mean" / "summary.json").unlink()
    assert main(["reproduce", "--config", str(path), "--no-ray", "--report-only"]) == 0
    line = next(l for l in doc.read_text().splitlines() if l.startswith("| TextGAN (`textgan_mean`) |"))
    assert "| in progress: pretraining D, round 1 of 1 |" in line
    assert doc.read_text().count("A demo table we keep.") == 1


def test_a_corpus_file_reports_bleu_and_self_bleu_beside_the_published_rows(tmp_path, capsys):
    """COCO's table in small: on a corpus the report shows each run's BLEU-2..5, Self-BLEU-2..5
    and NLL-test from its last evaluation, the numbers `reproduce.paper` gives in a 'published'
    row under the run, and no NLL-oracle figure; published numbers are checked by name."""
    from tests.helpers import text_corpus

    train, test = text_corpus(tmp_path / "text")
    runs = {"mle": {"train.method": "mle"}, "seqgan": {},
            "textgan": {"train.method": "textgan", "generator.kind": "latent_lstm"}}
    paper = {"seqgan": {"bleu2": 0.745, "bleu5": 0.18, "self_bleu2": 0.95, "self_bleu5": 0.489}}
    path = reproduce_file(tmp_path, runs, standalone=["textgan"], paper=paper)
    data = yaml.safe_load(path.read_text())
    data["data"].update(corpus=str(train), test_text=str(test))
    path.write_text(yaml.safe_dump(data))
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 0
    doc = tmp_path / "doc" / "synthetic.md"
    head = doc.read_text().split(NOTES_MARKER)[0]
    assert "| method | numbers | BLEU-2 | BLEU-3 | BLEU-4 | BLEU-5 | Self-BLEU-2 |" in head
    assert "| SeqGAN | published | .745 |  |  | .180 | .950 |  |  | .489 |  |  |  |" in head
    metrics = [json.loads(l) for l in (tmp_path / "runs" / "seed0" / "seqgan" / "metrics.jsonl").read_text().splitlines()]
    last = [m for m in metrics if m["phase"] == "adversarial" and "eval/bleu2" in m][-1]
    ours = next(l for l in head.splitlines() if l.startswith("| SeqGAN | ours |")).split(" | ")
    assert ours[2] == f"{last['eval/bleu2']:.3f}".removeprefix("0") and float(ours[10]) == round(last["eval/nll_test"], 3)
    for label in ("Untrained generator", "MLE, after pretraining", "MLE", "TextGAN"):
        line = next(l for l in head.splitlines() if l.startswith(f"| {label} | ours |"))
        assert "not run yet" not in line and line.count(" | .") >= 8, line
    assert not (tmp_path / "doc" / "synthetic_figure2.png").exists()

    data["reproduce"]["paper"] = {"seqgan": 8.736}
    path.write_text(yaml.safe_dump(data))
    assert main(["reproduce", "--config", str(path), "--report-only"]) == 2
    assert "reproduce.paper.seqgan: on a corpus, give the published metrics by name" in capsys.readouterr().err
    data["reproduce"]["paper"] = {"seqgan": {"bleu_2": 0.745}}
    path.write_text(yaml.safe_dump(data))
    assert main(["reproduce", "--config", str(path), "--report-only"]) == 2
    assert "reproduce.paper.seqgan.bleu_2: not a metric the report shows" in capsys.readouterr().err
    data["reproduce"].update(paper={}, bars={"seqgan": 0.7})
    path.write_text(yaml.safe_dump(data))
    assert main(["reproduce", "--config", str(path), "--report-only"]) == 2
    assert "reproduce.bars: a corpus report has no bar" in capsys.readouterr().err


def test_a_stopped_reproduce_names_the_command_that_resumes_it(tmp_path):
    """SIGTERM stops the run at a checkpoint; the message gives the command as it was typed
    (its overrides and --runs): what resumes it, into the same folder."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    path = reproduce_file(tmp_path, {"mle": {"train.method": "mle"}, "seqgan": {}})
    data = yaml.safe_load(path.read_text())
    data["train"].update(pretrain_g_epochs=400, checkpoint_every=1000)
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "elsewhere"
    cmd = ["reproduce", "--config", str(path), "--no-ray", "--runs", "mle", f"reproduce.out_dir={out}"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *cmd], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True)
    metrics = out / "seed0" / "pretrain" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    import shlex

    assert f"resume with: python run.py {shlex.join(cmd)}" in err
    assert any((out / "seed0" / "pretrain" / "checkpoints").glob("pretrain_g_*.pt"))


KILLED_AT_FIRST_CHECKPOINT = """
import os, signal, sys
import seqgan_ray.trainer as trainer
save = trainer.save_checkpoint
def killed(folder, name, state, **kw):  # SIGKILL, as the OOM killer or kill -9: nothing more is written
    if folder.parent.name == "seqgan" and name.startswith("adversarial_"):
        os.kill(os.getpid(), signal.SIGKILL)
    return save(folder, name, state, **kw)
trainer.save_checkpoint = killed
from seqgan_ray.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_run_whose_driver_was_killed_before_its_first_checkpoint_starts_its_records_afresh(tmp_path):
    """The reproduce driver SIGKILLed in the second run's adversarial phase, with iteration 1
    and 2's records written but not their checkpoint: the same command again starts that run
    afresh, and its metrics hold every iteration and evaluation once (they held the killed
    attempt's records too, which the report counted)."""
    import subprocess
    import sys

    from seqgan_ray.runlog import read_metrics
    from tests.helpers import ROOT

    path = reproduce_file(tmp_path, {"mle": {"train.method": "mle"}, "seqgan": {}})
    data = yaml.safe_load(path.read_text())
    data["train"].update(pretrain_g_epochs=2, pretrain_d_rounds=1, adv_iterations=4, checkpoint_every=2)
    path.write_text(yaml.safe_dump(data))
    cmd = ["reproduce", "--config", str(path), "--no-ray", "--no-report"]
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_FIRST_CHECKPOINT, *cmd], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    run = tmp_path / "runs" / "seed0" / "seqgan"
    left = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["phase"] == "adversarial"]
    assert left == [1, 1, 2, 2] and not any((run / "checkpoints").glob("*.pt"))  # as the kill left it

    again = subprocess.run([sys.executable, str(ROOT / "run.py"), *cmd], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "seqgan: starting" in again.stderr and "mle: done" in again.stderr
    records = read_metrics(run / "metrics.jsonl")
    iterations = [r["step"] for r in records if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    evaluations = [r["step"] for r in records if r["phase"] == "adversarial" and "eval/oracle_nll" in r]
    assert iterations == evaluations == [1, 2, 3, 4]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["attempts"], summary["resumes"], summary["recoveries"]) == (1, 0, 0)


def test_a_family_report_judges_each_method_against_mle_at_equal_nll_test(tmp_path):
    """The laptop tier's report (configs/reproduce_family.yaml's shape, tiny): three seeds, each
    run's frontier on every seed, the frontier gap with a t-interval, D's held-out accuracy, the
    regime checks, and a verdict in words, or the failed check instead of one."""
    from seqgan_ray.experiments.verdict import (SHARPENS, collect_gap, judge, read_frontiers, read_regime,
                                                regime_checks)

    runs = {"mle": {"train.method": "mle"}, "seqgan": {},
            "gsgan": {"train.method": "gsgan", "generator.adv_lr": 1e-9}}  # a G that cannot move
    path = reproduce_file(tmp_path, runs, seeds=[0, 1, 2], frontier=list(runs), temperatures=[0.7, 1.0, 1.4],
                          title="A laptop tier", intro="Scaling rules: nothing is scaled here.",
                          beta_min={"gsgan": 1000.0}, paper_schedule={"seqgan": "200 iterations"},
                          paper_iterations={"seqgan": 200})
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 0
    report = (tmp_path / "doc" / "synthetic.md").read_text()
    assert report.startswith("# A laptop tier\n\nScaling rules: nothing is scaled here.\n")
    assert "## Against MLE at equal NLL-test" in report and (tmp_path / "doc" / "synthetic_frontier.png").is_file()
    head = next(l for l in report.splitlines() if l.startswith("| method | frontier gap |"))
    assert head.split(" | ")[1:] == ["frontier gap", "± 95%", "per seed",
                                     "D held-out acc. (after pretraining; after the run)", "β at the end",
                                     "G moved", "paper's schedule (fraction run)", "verdict |"]
    rows = {l.split(" | ")[0]: l.split(" | ") for l in report.split("## Against MLE")[1].splitlines()
            if l.startswith("| ") and not l.startswith("| method")}
    assert rows["| MLE"][-1] == "the baseline |" and rows["| MLE"][4] == "–"  # MLE trains no D
    plan = load_plan(path)
    mle = read_frontiers(plan, "mle")
    assert set(mle) == {0, 1, 2}
    # SeqGAN: its gap over three seeds (a t-interval), its D's accuracies, 1% of the paper's iterations,
    # and the verdict the rule gives those numbers
    seqgan = rows["| SeqGAN"]
    regime = read_regime(plan, "seqgan")
    assert seqgan[4] == ("; ".join(" / ".join(f"{a:.2f}" for a in accs)
                                   for accs in (regime.d_after_pretraining, regime.d_after_run))
                         + " (training sequences: " + " / ".join(f"{a:.2f}" for a in regime.d_trainset) + ")")
    assert seqgan[7] == "200 iterations (1% of its iterations)"
    gap = collect_gap(read_frontiers(plan, "seqgan"), mle)
    if gap is not None:
        assert seqgan[1] == f"{gap.mean:+.3f}" and seqgan[2] == f"{gap.ci:.3f}{'ᵗ' if len(gap.seeds) == 3 else ''}"
        assert seqgan[3].startswith(" / ".join(f"{g:+.3f}" for g in gap.per_seed))  # a seed off MLE's frontier: named
        assert seqgan[3].endswith(")") == (len(gap.seeds) < 3)
    assert seqgan[-1] == judge(gap, regime_checks(plan, "seqgan", regime)) + " |"
    # GSGAN: G did not move and β stayed below the range asked of it: no verdict, the checks say why
    gsgan = rows["| GSGAN"]
    assert "(≥ 1000)" in gsgan[5] and float(gsgan[6].split(" / ")[0]) < 1e-3
    assert gsgan[-1].startswith("no verdict: regime check failed (") and "β reached" in gsgan[-1]
    assert "G moved" in gsgan[-1] and SHARPENS not in gsgan[-1]


def test_seeds_pretrain_side_by_side_and_pretrain_only_trains_no_run(tmp_path, capsys):
    """--jobs 2 over two seeds: both seeds' pretraining start at once, each in its own process
    and log, and each seed's runs after its own; --pretrain-only trains the pretraining alone."""
    path = reproduce_file(tmp_path, {"mle": {"train.method": "mle"}}, seeds=[0, 1])
    assert main(["reproduce", "--config", str(path), "--no-ray", "--seeds", "0", "--pretrain-only", "--no-report"]) == 0
    out = tmp_path / "runs"
    assert (out / "seed0" / "pretrain" / "summary.json").is_file() and not (out / "seed0" / "mle").exists()
    capsys.readouterr()
    assert main(["reproduce", "--config", str(path), "--no-ray", "--jobs", "2"]) == 0
    err = capsys.readouterr().err
    assert err.index("seed 1: pretraining started") < err.index("seed 0: pretraining finished")
    for seed in (0, 1):
        assert err.index(f"seed {seed}: pretraining finished") < err.index(f"seed {seed}: mle started")
        assert (out / f"seed{seed}" / "pretrain.log").is_file()
        assert (out / f"seed{seed}" / "mle" / "summary.json").is_file()
    assert "seed 0: pretraining: done" in (out / "seed0" / "pretrain.log").read_text()  # trained once, by --pretrain-only


def test_a_standalone_run_may_start_from_anothers_pretraining(tmp_path, capsys):
    """reproduce.pretrained_by: LeakGAN's ablation starts from LeakGAN's own pretraining (the same
    model and schedule), trained after it, side by side or not; it pretrains nothing itself."""
    from seqgan_ray.runlog import read_metrics

    leak = {"train.method": "leakgan", "generator.kind": "leakgan", "rollout.stride": 4, "rollout.update_rate": 0.0,
            "leakgan.pretrain_rounds": 1}
    runs = {"mle": {"train.method": "mle"}, "leakgan_reference": {**leak, "leakgan.rescale": "reference"},
            "leakgan": leak}
    path = reproduce_file(tmp_path, runs, standalone=["leakgan", "leakgan_reference"],
                          pretrained_by={"leakgan_reference": "leakgan"})
    assert main(["reproduce", "--config", str(path), "--no-ray", "--runs", "leakgan_reference"]) == 2
    assert "train leakgan first" in capsys.readouterr().err
    assert main(["reproduce", "--config", str(path), "--no-ray", "--jobs", "2"]) == 0
    err = capsys.readouterr().err
    assert err.index("seed 0: leakgan started") < err.index("seed 0: leakgan_reference started")  # from its pretraining (below)
    out = tmp_path / "runs" / "seed0"
    donor, ablation = (json.loads((out / n / "summary.json").read_text()) for n in ("leakgan", "leakgan_reference"))
    assert ablation["oracle_nll_after_pretraining"] == donor["oracle_nll_after_pretraining"]
    assert {m["phase"] for m in read_metrics(out / "leakgan_reference" / "metrics.jsonl")} == {"adversarial"}
    assert "`leakgan_reference`: the pretraining of `leakgan`: " in (tmp_path / "doc" / "synthetic.md").read_text()


def test_a_run_starts_from_anothers_pretraining_as_soon_as_it_has_ended(tmp_path, capsys):
    """A donor stopped right after its pretraining (no adversarial checkpoint yet) is enough; one
    stopped inside it is not."""
    leak = {"train.method": "leakgan", "generator.kind": "leakgan", "rollout.stride": 4, "rollout.update_rate": 0.0,
            "leakgan.pretrain_rounds": 1, "train.checkpoint_every": 1, "train.keep_checkpoints": 10}
    runs = {"mle": {"train.method": "mle"}, "leakgan": leak, "leakgan_constant": {**leak, "rollout.reward": "constant"}}
    path = reproduce_file(tmp_path, runs, standalone=["leakgan", "leakgan_constant"],
                          pretrained_by={"leakgan_constant": "leakgan"})
    assert main(["reproduce", "--config", str(path), "--no-ray", "--runs", "leakgan", "--no-report"]) == 0
    donor = tmp_path / "runs" / "seed0" / "leakgan"
    (donor / "summary.json").unlink()  # as if stopped when its pretraining ended
    for ckpt in (donor / "checkpoints").glob("adversarial_*.pt"):
        ckpt.unlink()
    pretrained = sorted((donor / "checkpoints").glob("pretrain_g_*.pt"))
    assert [p.name for p in pretrained] == ["pretrain_g_000001.pt", "pretrain_g_000002.pt"]
    last = pretrained[-1]
    hidden = last.rename(last.with_suffix(".kept"))  # stopped one epoch before its end
    capsys.readouterr()
    assert main(["reproduce", "--config", str(path), "--no-ray", "--runs", "leakgan_constant", "--no-report"]) == 2
    assert "train leakgan first" in capsys.readouterr().err
    # --jobs N waits on an unfinished donor until its pretraining has ended, not to its end
    plan, donor_job = load_plan(path), {(0, "leakgan")}
    assert waiting_on(plan, donor_job, "leakgan_constant") == donor_job
    hidden.rename(last)
    assert waiting_on(plan, donor_job, "leakgan_constant") == set()
    assert waiting_on(plan, donor_job, "mle") == donor_job  # not what mle starts from
    assert main(["reproduce", "--config", str(path), "--no-ray", "--runs", "leakgan_constant", "--no-report"]) == 0
    assert (tmp_path / "runs" / "seed0" / "leakgan_constant" / "summary.json").is_file()


def test_a_corpus_file_trains_its_runs_side_by_side(tmp_path, capsys):
    """--jobs 2 on a corpus: each run's process reads the reproduce file afresh (the file's
    data.vocab_size and data.seq_len, which the prepared corpus replaces) and still finds the
    shared pretraining its own (it once stopped: 'trained with data.vocab_size=...')."""
    from tests.helpers import text_corpus

    train, test = text_corpus(tmp_path / "text")
    path = reproduce_file(tmp_path, {"mle": {"train.method": "mle"}, "seqgan": {}})
    data = yaml.safe_load(path.read_text())
    data["data"].update(corpus=str(train), test_text=str(test))
    path.write_text(yaml.safe_dump(data))
    assert main(["reproduce", "--config", str(path), "--no-ray", "--jobs", "2"]) == 0, capsys.readouterr().err
    for name in ("mle", "seqgan"):
        assert (tmp_path / "runs" / "seed0" / name / "summary.json").is_file()


def test_records_rewrite_the_report_where_the_run_folders_are_gone(tmp_path, capsys):
    """reproduce.records: writing the report keeps each finished run's record (no weights); with
    the run folders deleted, --report-only writes the same report from them, and training skips
    the runs they hold, but trains a run whose record another file's config no longer matches."""
    runs = {"mle": {"train.method": "mle"}, "seqgan": {}}
    path = reproduce_file(tmp_path, runs, seeds=[0, 1], frontier=list(runs), temperatures=[0.8, 1.0, 1.3],
                          records=str(tmp_path / "doc" / "records"))
    assert main(["reproduce", "--config", str(path), "--no-ray"]) == 0
    report = tmp_path / "doc" / "synthetic.md"
    first = report.read_text()
    records = tmp_path / "doc" / "records"
    assert sorted(p.name for p in (records / "seed1").iterdir()) == ["mle", "pretrain", "seqgan"]
    kept = {p.name for p in (records / "seed0" / "seqgan").iterdir()}
    assert kept == {"config.yaml", "summary.json", "data_source.txt", "frontier.csv", "metrics.jsonl",
                    "nll_test.json"}
    assert not list(records.rglob("*.pt"))
    shutil.rmtree(tmp_path / "runs")
    capsys.readouterr()
    assert main(["reproduce", "--config", str(path), "--no-ray", "--report-only"]) == 0
    second = report.read_text()
    assert f"and the records in `{records}`" in second
    assert second.replace(f" and the records in `{records}` (runs whose folders are not there)", "") == first
    # training skips what the records hold; a record of another config is left out, and trained again
    assert main(["reproduce", "--config", str(path), "--no-ray", "--runs", "mle"]) == 0
    assert "seed 0: mle: kept in" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    assert main(["reproduce", "--config", str(path), "--no-ray", "--runs", "seqgan", "--seeds", "0",
                 "rollout.num_rollouts=3"]) == 0
    err = capsys.readouterr().err
    assert "was trained with rollout.num_rollouts=4" in err and "the report leaves it out" in err
    assert (tmp_path / "runs" / "seed0" / "seqgan" / "summary.json").is_file()
