"""Ray Tune sweeps: the search-space file and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqgan_ray.config import ConfigError
from seqgan_ray.distributed.sweep import load_sweep, searches_pretraining
from tests.helpers import ROOT, write_sweep_file


def test_the_shipped_sweep_file_parses():
    base, sweep = load_sweep(ROOT / "configs" / "tune_oracle.yaml")
    assert sweep.metric == "eval/oracle_nll" and sweep.scheduler == "asha"
    assert set(sweep.search_space) == {"rollout.num_rollouts", "generator.adv_lr", "rollout.update_rate"}
    assert not searches_pretraining(sweep) and base.train.adv_iterations == 12
    assert Path(base.data.oracle_dir).is_absolute()  # trials run in their own folders


@pytest.mark.parametrize("space,message", [
    ({"rollout.num_rolouts": {"choice": [4, 8]}}, "did you mean 'rollout.num_rollouts'"),
    ({"rollout.num_rollouts": {"choice": []}}, "non-empty list"),
    ({"generator.adv_lr": {"loguniform": [1e-2, 1e-4]}}, "low 0.01 > high 0.0001"),
    ({"generator.adv_lr": {"normal": [0, 1]}}, "kind in choice, grid"),
    ({"rollout.num_rollouts": {"choice": [4, 0]}}, "'rollout.num_rollouts' must be > 0"),
    ({"rollout.update_rate": {"uniform": [0.0, 1.5]}}, "rollout.update_rate"),
])
def test_bad_search_spaces_fail_before_any_trial(tmp_path, space, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_sweep(write_sweep_file(tmp_path, {"search_space": space}))


def test_a_metric_that_is_never_reported_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="never reported"):
        load_sweep(write_sweep_file(tmp_path, {"metric": "eval/bleu_9", "search_space": {"rollout.num_rollouts": {"choice": [2]}}}))


def test_an_unknown_tune_key_is_named_with_the_closest_one(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'tune.metric'"):
        load_sweep(write_sweep_file(tmp_path, {"metrik": "eval/oracle_nll",
                                          "search_space": {"rollout.num_rollouts": {"choice": [2]}}}))
