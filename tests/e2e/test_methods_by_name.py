"""Every method starts by its name alone, on its own models and settings (a newcomer's first
command), and trains: a short schedule of each on the default models, in one process."""

from __future__ import annotations

import json

import pytest

from seqgan_ray.algorithms import ALGORITHMS
from seqgan_ray.cli import main

SHORT = ["train.pretrain_g_epochs=1", "train.pretrain_d_rounds=1", "train.adv_iterations=1",
         "train.num_negatives=128", "train.eval_samples=128", "data.num_train=256", "data.oracle_dir=",
         "run.num_samples_saved=4"]


@pytest.mark.parametrize("method", sorted(ALGORITHMS))
def test_a_method_trains_by_its_name_alone(method, tmp_path, capsys):
    short = [o for o in SHORT if not (method == "relgan" and o.startswith("train.pretrain_d_rounds"))]  # none
    assert main(["--no-ray", f"train.method={method}", f"run.out_dir={tmp_path}", "run.name=r", *short]) == 0
    err = capsys.readouterr().err
    assert f"method {method}: generator " in err and "warning" not in err, err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["oracle_nll_after_adversarial"] is not None
