"""The relaxed GANs end to end: RelGAN (its generator and discriminator) and GSGAN (SeqGAN's
models) train, log, and resume exactly after an interruption; on Ray actors too."""

import math

import pytest

from seqgan_ray.config import config_from_dict
from seqgan_ray.runlog import read_metrics
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import Interrupted, local_roles, train
from tests.e2e.test_faults import _signal_on_call
from tests.helpers import LONGER, stable_metrics
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

    roles = local_roles(cfg)
    _signal_on_call(roles.discriminator, "adversarial_step", 5)  # inside iteration 3 (2 D steps each)
    with pytest.raises(Interrupted):
        train(cfg, task, roles, tmp_path / "split")
    train(cfg, task, local_roles(cfg), tmp_path / "split", resume=True)
    assert stable_metrics(tmp_path / "split" / "metrics.jsonl") == stable_metrics(tmp_path / "whole" / "metrics.jsonl")
