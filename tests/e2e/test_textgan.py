"""TextGAN end to end: both feature matchings train, log, and resume exactly after an
interruption; on a text corpus too."""

import json
import math

import pytest

from seqgan_ray.config import config_from_dict
from seqgan_ray.runlog import read_metrics
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import local_roles, train
from tests.helpers import LONGER, assert_resumes_exactly
from tests.unit.test_textgan import TEXTGAN


def textgan_config(match: str = "mmd", noise: bool = True):
    sections = {k: dict(v) for k, v in LONGER.items()}
    for name, values in TEXTGAN.items():
        sections[name] = {**sections.get(name, {}), **values}
    sections["train"].update(adv_iterations=4, checkpoint_every=1)
    sections["relaxed"] = {"d_steps": 2}
    sections["textgan"] = {"match": match, "bandwidths": [1.0, 20.0], "noise": noise}
    return config_from_dict(sections)


@pytest.mark.parametrize("match,noise", [("mmd", True), ("mean", False)])  # false: the authors' soft-argmax
def test_textgan_runs_and_resumes_exactly(tmp_path, match, noise):
    cfg = textgan_config(match, noise)
    task = load_task(cfg.data)
    whole = train(cfg, task, local_roles(cfg), tmp_path / "whole")
    steps = [r for r in read_metrics(tmp_path / "whole" / "metrics.jsonl") if f"gen/{match}" in r]
    assert len(steps) == 4 and all(math.isfinite(r[f"gen/{match}"]) and math.isfinite(r["disc/loss"])
                                   for r in steps)
    assert whole.summary["oracle_nll_after_adversarial"] > 0

    assert_resumes_exactly(cfg, task, tmp_path, role="discriminator", method="adversarial_step", call=5)  # inside iteration 3 (2 D steps each)
    assert (tmp_path / "split" / "samples.txt").read_text() == (tmp_path / "whole" / "samples.txt").read_text()


def test_textgan_on_a_text_corpus(tmp_path):
    """Real batches come from the corpus's shards, the soft-argmax tokens end at <eos> like the
    tokens, the text metrics (NLL-test under the fixed codes, BLEU) are written, and the run's
    frontier can be evaluated."""
    from seqgan_ray.cli import main
    from tests.helpers import TINY_TEXT, text_corpus

    train_txt, test_txt = text_corpus(tmp_path / "text")
    assert main(["--no-ray", f"data.corpus={train_txt}", f"data.test_text={test_txt}", "train.method=textgan",
                 "generator.kind=latent_lstm", f"run.out_dir={tmp_path / 'runs'}", "run.name=t", *TINY_TEXT]) == 0
    summary = json.loads((tmp_path / "runs" / "t" / "summary.json").read_text())
    final = summary["eval_after_adversarial"]
    assert 0 < final["eval/nll_test"] < 10 and 0 <= final["eval/bleu2"] <= 1
    steps = [r for r in read_metrics(tmp_path / "runs" / "t" / "metrics.jsonl") if "gen/mmd" in r]
    assert len(steps) == 2 and all(math.isfinite(r["disc/loss"]) for r in steps)
    # the frontier over temperatures: samples with their own codes, NLL-test under the fixed ones
    assert main(["evaluate", "--run", str(tmp_path / "runs" / "t"), "--num", "32", "--temperatures", "0.8,1.2",
                 "--quiet"]) == 0
    rows = (tmp_path / "runs" / "t" / "frontier.csv").read_text().splitlines()
    assert len(rows) == 3
