"""Shared fixtures: one embedded Ray cluster for every Ray test, and tiny configs."""

from __future__ import annotations

import pytest

from seqgan_ray.config import Config, config_from_dict

TINY = {
    "data": {"vocab_size": 40, "seq_len": 8, "num_train": 256, "oracle_emb_dim": 8,
             "oracle_hidden_dim": 8, "oracle_dir": "/nonexistent-oracle-dir"},
    "generator": {"emb_dim": 8, "hidden_dim": 8, "batch_size": 16},
    "discriminator": {"emb_dim": 8, "filter_sizes": [1, 2, 4], "num_filters": [6, 6, 6], "batch_size": 32},
    "rollout": {"num_rollouts": 4},
    "train": {"pretrain_g_epochs": 2, "pretrain_d_rounds": 1, "pretrain_d_epochs": 1,
              "adv_iterations": 2, "d_steps": 1, "k_epochs": 1, "num_negatives": 128,
              "eval_every": 1, "eval_samples": 128, "checkpoint_every": 1},
    "run": {"progress": False, "num_samples_saved": 10},
}


@pytest.fixture
def tiny_cfg() -> Config:
    return config_from_dict({k: dict(v) for k, v in TINY.items()})


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()
