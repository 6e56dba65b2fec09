"""The relaxed GANs end to end: RelGAN (its generator and discriminator) and GSGAN (SeqGAN's
models) train, log, and resume exactly after an interruption; on Ray actors too."""

import math

import pytest

from seqgan_ray.config import config_from_dict
from seqgan_ray.runlog import read_metrics
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import local_roles, train
from tests.helpers import LONGER, assert_resumes_exactly
from tests.unit.test_relaxed import RELGAN


def relaxed_config(method: str):
    sections = {k: dict(v) for k, v in LONGER.items()}
    if method == "relgan":
        for name, values in RELGAN.items():
            sections[name] = {**sections.get(name, {}), **values}
    sections["train"].update(method=method, adv_iterations=4, checkpoint_every=1)
    sections["relaxed"] = {"d_steps": 2}
    return config_from_dict(sections)


@pytest.mark.parametrize("method", ["relgan", "gsgan"])
def test_relaxed_gan_runs_and_resumes_exactly(tmp_path, method):
    cfg = relaxed_config(method)
    task = load_task(cfg.data)
    whole = train(cfg, task, local_roles(cfg), tmp_path / "whole")
    steps = [r for r in read_metrics(tmp_path / "whole" / "metrics.jsonl") if "gen/adv_loss" in r]
    assert len(steps) == 4 and all(math.isfinite(r["gen/adv_loss"]) and math.isfinite(r["disc/loss"])
                                   for r in steps)
    betas = [r["relaxed/inverse_temperature"] for r in steps]
    start = 1.0 if method == "relgan" else 0.2
    assert betas[0] == pytest.approx(start) and betas[-1] == pytest.approx(100.0)  # β_max at the last
    assert whole.summary["oracle_nll_after_adversarial"] > 0
    if method == "relgan":  # RelGAN pretrains no D: no pretrain_d rows
        assert not any(r["phase"] == "pretrain_d" for r in read_metrics(tmp_path / "whole" / "metrics.jsonl"))

    assert_resumes_exactly(cfg, task, tmp_path, role="discriminator", method="adversarial_step", call=5)  # inside iteration 3 (2 D steps each)


@pytest.mark.parametrize("method", ["relgan", "gsgan"])
def test_relaxed_gan_on_a_text_corpus(tmp_path, method):
    """Real batches come from the corpus's shards, soft tokens end at <eos> like the tokens, and the
    text metrics are written."""
    import json

    from seqgan_ray.cli import main
    from tests.helpers import TINY_TEXT, text_corpus

    train_txt, test_txt = text_corpus(tmp_path / "text")
    extra = ["generator.kind=relational_memory", "generator.head_size=4", "discriminator.kind=relgan",
             "discriminator.num_rep=4", "train.pretrain_d_rounds=0"] if method == "relgan" else []
    assert main(["--no-ray", f"data.corpus={train_txt}", f"data.test_text={test_txt}", f"train.method={method}",
                 f"run.out_dir={tmp_path / 'runs'}", "run.name=t", *TINY_TEXT, *extra]) == 0
    summary = json.loads((tmp_path / "runs" / "t" / "summary.json").read_text())
    final = summary["eval_after_adversarial"]
    assert 0 < final["eval/nll_test"] < 10 and 0 <= final["eval/bleu2"] <= 1
    steps = [r for r in read_metrics(tmp_path / "runs" / "t" / "metrics.jsonl") if "gen/adv_loss" in r]
    assert len(steps) == 2 and all(math.isfinite(r["disc/loss"]) for r in steps)
