"""Shared fixtures: one embedded Ray cluster for every Ray test, tiny configs, a tiny trained
run; and the layer markers: a test under tests/unit, tests/ray or tests/e2e is marked so."""

from __future__ import annotations

import shutil
from pathlib import Path

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


def pytest_collection_modifyitems(config, items):
    for item in items:
        layer = Path(str(item.fspath)).parent.name
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))


LAYERS = ("unit", "ray", "e2e")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny synthetic run, trained once for this module (a few seconds)."""
    from seqgan_ray.tasks import load_task
    from seqgan_ray.trainer import local_roles, train

    cfg = config_from_dict({k: dict(v) for k, v in TINY.items()})
    run = tmp_path_factory.mktemp("frontier") / "tiny"
    roles = local_roles(cfg)
    try:
        train(cfg, load_task(cfg.data), roles, run)
    finally:
        roles.shutdown()
    return run


@pytest.fixture
def run_dir(trained, tmp_path) -> Path:
    """A fresh copy of the trained run, for a test that writes into it."""
    return Path(shutil.copytree(trained, tmp_path / "tiny"))
