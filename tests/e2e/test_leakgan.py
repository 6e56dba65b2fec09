"""LeakGAN end to end: interleaved pretraining, fresh positives, the adversarial loop's
breakdown, exact resume after an interruption, and a text corpus."""

import json
import math

import pytest
import torch

from seqgan_ray.config import config_from_dict
from seqgan_ray.runlog import read_metrics
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import Trainer, local_roles, train
from tests.helpers import assert_resumes_exactly
from tests.unit.test_leakgan import leakgan_sections


def leakgan_config(**overrides):
    sections = leakgan_sections(**overrides)
    sections["train"].update(pretrain_g_epochs=4, pretrain_d_rounds=2, adv_iterations=3, checkpoint_every=1)
    sections["leakgan"].update(pretrain_rounds=2)
    return config_from_dict(sections)


def test_leakgan_interleaves_pretraining_and_resumes_exactly(tmp_path):
    cfg = leakgan_config()
    task = load_task(cfg.data)
    whole = train(cfg, task, local_roles(cfg), tmp_path / "whole")
    rows = read_metrics(tmp_path / "whole" / "metrics.jsonl")
    # the reference's order: a D round, two MLE epochs, a D round, two MLE epochs
    order = [(r["phase"], r["step"]) for r in rows if "disc/loss" in r or "pretrain/gen_nll" in r]
    assert order[:6] == [("pretrain_d", 1), ("pretrain_g", 1), ("pretrain_g", 2),
                         ("pretrain_d", 2), ("pretrain_g", 3), ("pretrain_g", 4)]
    steps = [r for r in rows if "gen/pg_loss" in r]
    assert len(steps) == 3 and all(math.isfinite(r["gen/pg_loss"]) and r["time/negatives_s"] > 0 for r in steps)
    # the rescaled rewards' batch mean is fixed by the ranks: σ-average over 1..B, / N
    B, N = cfg.generator.batch_size, cfg.rollout.num_rollouts
    expected = torch.sigmoid(16.0 * (torch.arange(1, B + 1) / B - 0.5)).mean().item() / N
    assert all(r["gen/reward_mean"] == pytest.approx(expected, rel=1e-5) for r in steps)
    assert whole.summary["oracle_nll_after_adversarial"] > 0

    assert_resumes_exactly(cfg, task, tmp_path, role="discriminator", method="train", call=4)  # the first adversarial iteration's D round


def test_the_no_signal_control_ranks_by_place_in_the_batch_and_still_trains_d(tmp_path):
    """rollout.reward constant (LeakGAN's control): every score 1, so the true rank is a row's
    place in the batch, blind to D's scores; D still trains, its features steering the Manager."""
    cfg = leakgan_config(**{"rollout.reward": "constant"})
    train(cfg, load_task(cfg.data), local_roles(cfg), tmp_path / "r")
    steps = [r for r in read_metrics(tmp_path / "r" / "metrics.jsonl") if "gen/pg_loss" in r]
    assert len(steps) == 3 and all(r["gen/d_score_mean"] == 1.0 and math.isfinite(r["disc/loss"]) for r in steps)
    assert len({r["disc/loss"] for r in steps}) == 3   # D trained each iteration


def test_fresh_positives_are_new_oracle_samples_each_round(tmp_path):
    cfg = leakgan_config()
    task = load_task(cfg.data)
    trainer = Trainer(cfg, task, local_roles(cfg), tmp_path / "r")
    a, b = trainer.real_for_d(), trainer.real_for_d()
    assert a.shape == b.shape == (cfg.train.num_negatives, cfg.data.seq_len) and not torch.equal(a, b)
    off = Trainer(leakgan_config(**{"leakgan.fresh_positives": False}), task, local_roles(cfg), tmp_path / "s")
    assert off.real_for_d() is None  # SeqGAN's: D holds the training set


def test_leakgan_on_a_text_corpus(tmp_path):
    from seqgan_ray.cli import main
    from tests.helpers import TINY_TEXT, text_corpus

    train_txt, test_txt = text_corpus(tmp_path / "text")
    args = [a for a in TINY_TEXT if not a.startswith(("train.pretrain_d_rounds", "train.pretrain_g_epochs"))]
    assert main(["--no-ray", f"data.corpus={train_txt}", f"data.test_text={test_txt}", "data.seq_len=8",
                 "train.method=leakgan", "generator.kind=leakgan", "rollout.stride=4", "rollout.update_rate=0",
                 "leakgan.pretrain_rounds=1", "train.pretrain_g_epochs=2", "train.pretrain_d_rounds=1",
                 f"run.out_dir={tmp_path / 'runs'}", "run.name=t", *args]) == 0
    summary = json.loads((tmp_path / "runs" / "t" / "summary.json").read_text())
    final = summary["eval_after_adversarial"]
    assert 0 < final["eval/nll_test"] < 10 and 0 <= final["eval/bleu2"] <= 1


def test_a_corpus_too_short_for_the_step_size_is_refused_by_key(tmp_path, capsys):
    from seqgan_ray.cli import main
    from tests.helpers import TINY_TEXT, text_corpus

    train_txt, test_txt = text_corpus(tmp_path / "text")  # sentences of up to 7 tokens with <eos>
    assert main(["--no-ray", f"data.corpus={train_txt}", f"data.test_text={test_txt}", "data.seq_len=16",
                 "train.method=leakgan", "generator.kind=leakgan", "rollout.stride=8", "leakgan.step_size=8",
                 "rollout.update_rate=0", "leakgan.pretrain_rounds=1", "train.pretrain_d_rounds=1",
                 f"run.out_dir={tmp_path / 'runs'}", "run.name=t", *TINY_TEXT]) == 2
    err = capsys.readouterr().err
    assert "'leakgan.step_size' (8) must be smaller than T = 7" in err
