"""MaskGAN end to end: it trains, logs its in-fill metrics, and resumes exactly after an
interruption; on a text corpus too; `run.py train.method=maskgan` in a subprocess; a corpus
whose sentences are too short to mask is refused before any work."""

import copy
import json
import math

import pytest
import torch

from seqgan_ray.config import config_from_dict
from seqgan_ray.runlog import read_metrics
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import local_roles, train
from tests.helpers import LONGER, TINY_TEXT, assert_resumes_exactly, run_py, text_corpus

MASKGAN_TEXT = ["train.method=maskgan", "maskgan.hidden_dim=8", "maskgan.d_steps=1"]


def maskgan_config(**maskgan):
    sections = copy.deepcopy(LONGER)
    sections["train"].update(method="maskgan", adv_iterations=3, checkpoint_every=1, g_steps=2,
                             num_negatives=64)
    sections["maskgan"] = {"hidden_dim": 8, "d_steps": 2, **maskgan}
    return config_from_dict(sections)


@pytest.mark.parametrize("mode", ["random", "contiguous"])
def test_maskgan_runs_and_resumes_exactly(tmp_path, mode):
    cfg = maskgan_config(mask_mode=mode)
    task = load_task(cfg.data)
    roles = local_roles(cfg)
    pool_samples, rates = [], []
    sample, set_lr = roles.pool.sample, roles.discriminator.set_lr
    roles.pool.sample = lambda n: pool_samples.append(n) or sample(n)
    roles.discriminator.set_lr = lambda lr: rates.append(lr) or set_lr(lr)
    whole = train(cfg, task, roles, tmp_path / "whole")
    # D pretrains at the reference's dis_pretrain_learning_rate, then trains at discriminator.lr
    assert rates == [cfg.maskgan.d_pretrain_lr] * cfg.train.pretrain_d_rounds + [cfg.discriminator.lr]
    assert {g["lr"] for g in roles.discriminator.opt.param_groups} == {cfg.discriminator.lr}
    assert pool_samples and set(pool_samples) == {cfg.train.eval_samples}  # evaluation samples on the pool
    rows = read_metrics(tmp_path / "whole" / "metrics.jsonl")
    steps = [r for r in rows if "gen/reward_mean" in r]
    assert len(steps) == 3 and all(r["gen/reward_mean"] < 0 and math.isfinite(r["critic/loss"]) for r in steps)
    pretrain_d = [r for r in rows if r["phase"] == "pretrain_d" and "disc/loss" in r]
    assert len(pretrain_d) == 2 and all(0 < r["disc/loss"] < 2 for r in pretrain_d)
    final = whole.summary["eval_after_adversarial"]
    assert final["eval/infill_oracle_nll"] > 0 and final["eval/infill_nll_test"] > 0
    # D's per-token accuracy on held-out sequences against G's in-fills, after its pretraining and at the end
    assert 0 <= whole.summary["d_heldout_acc_after_pretraining"] <= 1 and 0 <= final["eval/d_heldout_acc"] <= 1
    assert 0 <= whole.summary["d_trainset_acc_after_pretraining"] <= 1 and 0 <= final["eval/d_trainset_acc"] <= 1
    # MaskMLE learned: the missing tokens' NLL fell from the untrained model's (about log V)
    assert whole.summary["eval_after_pretraining"]["eval/infill_nll_test"] < whole.summary["eval_random"]["eval/infill_nll_test"]
    # stopped inside the adversarial phase's second iteration (pretraining: 2 D rounds, then 2 D calls an iteration)
    assert_resumes_exactly(cfg, task, tmp_path, role="discriminator", method="objective_steps", call=5)
    assert (tmp_path / "split" / "samples.txt").read_text() == (tmp_path / "whole" / "samples.txt").read_text()


def test_maskgan_on_a_text_corpus(tmp_path):
    from seqgan_ray.cli import main

    train_txt, test_txt = text_corpus(tmp_path / "text")
    assert main(["--no-ray", f"data.corpus={train_txt}", f"data.test_text={test_txt}", *MASKGAN_TEXT,
                 f"run.out_dir={tmp_path / 'runs'}", "run.name=t", *TINY_TEXT]) == 0
    summary = json.loads((tmp_path / "runs" / "t" / "summary.json").read_text())
    final = summary["eval_after_adversarial"]
    assert 0 < final["eval/nll_test"] < 10 and 0 <= final["eval/bleu2"] <= 1 and final["eval/infill_nll_test"] > 0
    assert "eval/infill_oracle_nll" not in final  # no oracle for text
    # the in-fills' BLEU (against the other half of the held-out text) and Self-BLEU
    assert all(0 <= final[f"eval/infill_{m}{n}"] <= 1 for m in ("bleu", "self_bleu") for n in (2, 3, 4, 5))
    assert 0 < final["eval/unique_4gram_share"] <= 1
    samples = (tmp_path / "runs" / "t" / "samples.txt").read_text().splitlines()
    assert samples and all(line.split() for line in samples[:5])
    # the frontier over sampling temperatures and `run.py sample` read a MaskGAN run too
    assert main(["evaluate", "--run", str(tmp_path / "runs" / "t"), "--num", "32", "--temperatures", "0.8,1.2",
                 "--quiet"]) == 0
    assert len((tmp_path / "runs" / "t" / "frontier.csv").read_text().splitlines()) == 3
    assert main(["sample", "--run", str(tmp_path / "runs" / "t"), "--num", "2"]) == 0


def test_a_corpus_too_short_to_mask_is_refused(tmp_path, capsys):
    from seqgan_ray.cli import main

    train_txt, test_txt = tmp_path / "train.txt", tmp_path / "test.txt"
    train_txt.write_text("\n".join(["dog", "cat", "a man runs"] * 40) + "\n")
    test_txt.write_text("a dog\nthe cat\n")
    code = main(["--no-ray", f"data.corpus={train_txt}", f"data.test_text={test_txt}", *MASKGAN_TEXT,
                 f"run.out_dir={tmp_path / 'runs'}", "run.name=t", *TINY_TEXT])
    err = capsys.readouterr().err
    assert code != 0 and "data.corpus" in err and "too short to mask" in err
    assert not list((tmp_path / "runs" / "t").glob("metrics.jsonl"))  # no work done


def test_run_py_trains_maskgan(tmp_path):
    out = run_py("--no-ray", "train.method=maskgan", "maskgan.hidden_dim=8", "data.vocab_size=40", "data.seq_len=8",
                 "data.num_train=256", "data.oracle_emb_dim=8", "data.oracle_hidden_dim=8", "data.oracle_dir=",
                 "generator.batch_size=16", "discriminator.batch_size=32", "train.pretrain_g_epochs=1",
                 "train.pretrain_d_rounds=1", "train.adv_iterations=2", "train.num_negatives=64",
                 "train.eval_samples=64", "train.eval_every=1", f"run.out_dir={tmp_path}", "run.name=m",
                 "run.progress=false")
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["eval_after_adversarial"]["eval/infill_oracle_nll"] > 0


def test_a_tune_sweep_over_maskgan_settings(tmp_path):
    """Ray Tune trials of MaskGAN share one pretraining and each report their in-fill metrics."""
    import csv

    from tests.helpers import write_sweep_file

    base = maskgan_sections_for_sweep()
    sweep_file = write_sweep_file(tmp_path, {
        "name": "mg", "out_dir": str(tmp_path / "tune"), "num_samples": 1, "scheduler": "fifo", "driver_cpus": 0.2,
        "rollout_workers": 1, "metric": "eval/infill_oracle_nll",
        "search_space": {"maskgan.discount": {"grid": [0.5, 0.9]}}}, base)
    proc = run_py("tune", "--config", str(sweep_file), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "tune" / "mg-pretrained" / "summary.json").is_file()  # pretrained once
    rows = list(csv.DictReader(open(tmp_path / "tune" / "mg" / "results.csv")))
    assert sorted(float(r["maskgan.discount"]) for r in rows) == [0.5, 0.9]
    assert all(r["status"] == "TERMINATED" and float(r["eval/infill_oracle_nll"]) > 0 for r in rows)
    assert all(float(r["eval/infill_nll_test"]) > 0 for r in rows)  # the other metrics beside the searched one


def maskgan_sections_for_sweep() -> dict:
    sections = copy.deepcopy(LONGER)
    sections["train"].update(method="maskgan", adv_iterations=2, checkpoint_every=1, num_negatives=64,
                             pretrain_g_epochs=1, pretrain_d_rounds=1)
    sections["maskgan"] = {"hidden_dim": 8, "d_steps": 1}
    return sections


def test_maskmle_continues_maskmle_on_maskgans_models_and_leaves_d_alone(tmp_path):
    """train.method maskmle, MaskGAN's baseline: from a MaskGAN pretraining, more MaskMLE epochs
    (one an iteration) on the same models, evaluated as MaskGAN is; D is not trained."""
    from seqgan_ray.checkpoint import latest_checkpoint

    cfg = maskgan_config()
    cfg.train.adv_iterations = 0
    task = load_task(cfg.data)
    train(cfg, task, local_roles(cfg), tmp_path / "pre")
    mle = copy.deepcopy(cfg)
    mle.train.method, mle.train.adv_iterations = "maskmle", 2
    roles = local_roles(mle)
    result = train(mle, task, roles, tmp_path / "mle", start_from=latest_checkpoint(tmp_path / "pre" / "checkpoints"))
    rows = [r for r in read_metrics(tmp_path / "mle" / "metrics.jsonl") if r["phase"] == "adversarial"]
    assert [r["step"] for r in rows if "gen/mle_nll" in r] == [1, 2]
    final = result.summary["eval_after_adversarial"]
    assert final["eval/infill_nll_test"] < result.summary["eval_after_pretraining"]["eval/infill_nll_test"]
    assert "eval/d_heldout_acc" not in final and final["gen/param_change"] > 0
    saved = torch.load(latest_checkpoint(tmp_path / "pre" / "checkpoints"), weights_only=False)
    d_before = saved["discriminator"]["discriminator"]
    assert all(torch.equal(v, d_before[k]) for k, v in roles.discriminator.weights().items())
