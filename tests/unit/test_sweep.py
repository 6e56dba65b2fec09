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


LR = {"generator.adv_lr": {"loguniform": [1e-3, 1e-2]}}


@pytest.mark.parametrize("tune,message", [
    ({"stack": 2, "search_space": {"rollout.num_rollouts": {"choice": [2, 4]}}},
     "tune.search_space.rollout.num_rollouts: with tune.stack 2 a trial trains 2 configurations as one stacked "
     "model, which may differ only in generator.lr, generator.adv_lr, discriminator.lr"),
    ({"stack": 2, "search_space": {"generator.adv_lr": {"grid": [1e-3, 1e-2]}}}, "give choice instead"),
    ({"stack": 2, "scheduler": "pbt", "search_space": LR}, "tune.scheduler pbt"),
    ({"stack": 2, "num_samples": 3, "search_space": LR}, "tune.num_samples 3 is not a multiple of tune.stack 2"),
    ({"stack": 0, "search_space": LR}, "tune.stack must be a whole number >= 1"),
])
def test_a_stacked_sweep_its_trials_cannot_train_is_refused_by_key(tmp_path, tune, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_sweep(write_sweep_file(tmp_path, tune))


def test_a_stacked_sweep_of_a_method_that_does_not_stack_names_the_key(tmp_path):
    from tests.conftest import TINY

    base = {**TINY, "train": {**TINY["train"], "method": "mle"}}
    with pytest.raises(ConfigError, match="tune.stack 2: train.method=mle: only SeqGAN's adversarial phase stacks"):
        load_sweep(write_sweep_file(tmp_path, {"stack": 2, "metric": "eval/oracle_nll", "search_space": LR}, base))


def test_a_stacked_sweep_larger_than_memory_is_refused_with_how_many_fit(tmp_path, monkeypatch):
    from seqgan_ray import stacked_runs

    monkeypatch.setattr(stacked_runs, "free_memory", lambda device: 700 * 2**20)  # 0.7 GiB free
    with pytest.raises(ConfigError, match=r"tune.stack: 64 stacked runs need about .* stack at most \d+ "
                                          r"\(a smaller tune.stack\)"):
        load_sweep(write_sweep_file(tmp_path, {"stack": 64, "num_samples": 64, "search_space": LR}))


def test_each_member_of_a_stacked_trial_draws_its_own_values():
    from seqgan_ray.distributed.sweep import SweepConfig, member_params, param_space

    space = param_space(SweepConfig(stack=3, search_space={**LR, "discriminator.lr": {"choice": [1e-4, 1e-3]}}))
    assert sorted(space) == sorted(f"{k}#{j}" for k in ("generator.adv_lr", "discriminator.lr") for j in range(3))
    params = {f"{k}#{j}": 10 * j + i for i, k in enumerate(("generator.adv_lr", "discriminator.lr")) for j in range(3)}
    assert member_params(params, 2) == {"generator.adv_lr": 20, "discriminator.lr": 21}
    assert member_params(params, 0) == {"generator.adv_lr": 0, "discriminator.lr": 1}
