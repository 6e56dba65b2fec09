"""Each role as a Ray actor gives what the plain class gives for the same seed and weights."""

from __future__ import annotations

import pytest
import torch

from seqgan_ray.distributed.cluster import ActorResources
from seqgan_ray.distributed.pool import RemoteRole, RolloutPool, start_actor
from seqgan_ray.roles import DiscriminatorTrainer, GeneratorLearner, LocalRolloutPool
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import local_roles, train
from tests.helpers import torch_threads

RES = ActorResources(num_cpus=0.5, threads=1)


@pytest.fixture(autouse=True)
def actor_threads():
    """In-process roles compute with the actors' thread count, or sums may differ in the last bit."""
    with torch_threads(RES.threads):
        yield


def test_learner_actor_matches_in_process(ray_cluster, tiny_cfg):
    task = load_task(tiny_cfg.data)
    local = GeneratorLearner(tiny_cfg, 7)
    remote = RemoteRole(start_actor(GeneratorLearner, RES, tiny_cfg, 7))
    for role in (local, remote):
        role.set_data(task.real)
    assert local.pretrain_epoch() == remote.pretrain_epoch()
    torch.testing.assert_close(local.sample(32), remote.sample(32), rtol=0, atol=0)
    seqs = local.sample(16)
    rewards = torch.rand(16, tiny_cfg.data.seq_len, generator=torch.Generator().manual_seed(0))
    assert local.pg_step(seqs, rewards) == remote.pg_step(seqs, rewards)
    local.update_rollout_policy()
    remote.update_rollout_policy()
    for key, value in local.rollout_weights().items():
        torch.testing.assert_close(value, remote.rollout_weights()[key], rtol=0, atol=0)


def test_discriminator_actor_matches_in_process(ray_cluster, tiny_cfg):
    task = load_task(tiny_cfg.data)
    fake = GeneratorLearner(tiny_cfg, 1).sample(128)
    stats = []
    for role in (DiscriminatorTrainer(tiny_cfg, 3), RemoteRole(start_actor(DiscriminatorTrainer, RES, tiny_cfg, 3))):
        role.set_data(task.real)
        stats.append((role.train(fake, 2), role.weights()))
    assert stats[0][0] == stats[1][0]
    for key, value in stats[0][1].items():
        torch.testing.assert_close(value, stats[1][1][key], rtol=0, atol=0)


def test_rollout_pool_of_actors_matches_in_process_pool(ray_cluster, tiny_cfg):
    learner = GeneratorLearner(tiny_cfg, 5)
    disc = DiscriminatorTrainer(tiny_cfg, 6)
    seqs = learner.sample(12)
    out = []
    for pool in (LocalRolloutPool(tiny_cfg, 100, 2), RolloutPool.actors(tiny_cfg, 100, 2, RES)):
        pool.set_weights(learner.rollout_weights(), disc.weights())
        out.append(pool.rewards(seqs))
        pool.shutdown()
    assert out[0].shape == (12, tiny_cfg.data.seq_len)
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=0)


def test_training_loop_runs_on_actors_and_in_process_alike(ray_cluster, tiny_cfg, tmp_path):
    task = load_task(tiny_cfg.data)
    from pathlib import Path

    from seqgan_ray.distributed.cluster import ClusterSpec

    spec = ClusterSpec(path=Path("test"), name="test", embedded=True, num_cpus=2, rollout_workers=2,
                       rollout_worker=RES, learner=RES, discriminator=RES)
    from seqgan_ray.distributed.recovery import ray_roles

    results = []
    for name, roles in (("local", local_roles(tiny_cfg, rollout_workers=2)), ("ray", ray_roles(tiny_cfg, spec, 2))):
        try:
            results.append(train(tiny_cfg, task, roles, tmp_path / name).summary)
        finally:
            roles.shutdown()
    for key in ("oracle_nll_random", "oracle_nll_after_pretraining", "oracle_nll_after_adversarial"):
        assert results[0][key] == results[1][key], key


def test_maskgan_infills_on_actors_match_in_process_pool(ray_cluster, tiny_cfg):
    """MaskGAN's in-fills split between 2 actors equal the in-process pool's, and copy the present tokens."""
    import copy

    from seqgan_ray.models.maskgan import make_mask

    cfg = copy.deepcopy(tiny_cfg)
    cfg.train.method, cfg.maskgan.hidden_dim = "maskgan", 8
    learner = GeneratorLearner(cfg, 5)
    real = load_task(cfg.data).real[:12]
    present = make_mask(real, 0.5, "contiguous", eos=None, generator=torch.Generator().manual_seed(0))
    out = []
    for pool in (LocalRolloutPool(cfg, 100, 2), RolloutPool.actors(cfg, 100, 2, RES)):
        pool.set_weights(learner.rollout_weights(), None)
        out.append(pool.infill(real, present))
        pool.shutdown()
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=0)
    assert torch.equal(out[0][present], real[present]) and not torch.equal(out[0], real)
