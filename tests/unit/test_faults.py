"""Reliability, the quick checks: numerical faults, bad checkpoints, the rearm seed."""

from __future__ import annotations

import pytest
import torch

from seqgan_ray.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from seqgan_ray.roles import DiscriminatorTrainer, GeneratorLearner, RolloutWorker, StaleWeights
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import NumericalError, local_roles, train
from tests.helpers import faults_config


def test_nan_loss_stops_at_once_naming_phase_step_and_tensor(tmp_path):
    cfg = faults_config()
    roles = local_roles(cfg)
    original = roles.learner.pg_step

    def poisoned(seqs, rewards):
        return original(seqs, rewards * float("nan"))

    roles.learner.pg_step = poisoned
    with pytest.raises(NumericalError, match=r"adversarial step 1: policy-gradient loss"):
        train(cfg, load_task(cfg.data), roles, tmp_path / "run")
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.pt"))
    assert ckpts == ["pretrain_d_000002.pt", "pretrain_g_000003.pt"]  # last good ones, untouched
    assert not (tmp_path / "run" / "summary.json").exists()


def test_corrupt_and_mismatched_checkpoints_are_named(tmp_path):
    cfg = faults_config(train={"adv_iterations": 1})
    train(cfg, load_task(cfg.data), local_roles(cfg), tmp_path / "run")
    newest = latest_checkpoint(tmp_path / "run" / "checkpoints")
    other = faults_config(generator={"hidden_dim": 16})
    with pytest.raises(CheckpointError, match=r"generator.hidden_dim=8, but the config says 16"):
        load_checkpoint(newest, other)
    state = torch.load(newest, weights_only=True)
    for section, key in (("generator", "kind"), ("discriminator", "kind"), ("discriminator", "num_rep")):
        del state["config"][section][key]  # as saved before these keys existed: their defaults then
    before_kinds = tmp_path / "before_kinds.pt"
    torch.save(state, before_kinds)
    assert load_checkpoint(before_kinds, cfg)["step"] == 1
    relational = faults_config(generator={"kind": "relational_memory"})
    with pytest.raises(CheckpointError, match=r"generator.kind=lstm, but the config says relational_memory"):
        load_checkpoint(before_kinds, relational)
    old = tmp_path / "old_format.pt"  # a checkpoint of format 1 (conv1d-layout filters)
    torch.save({**torch.load(newest, weights_only=True), "format": 1}, old)
    with pytest.raises(CheckpointError, match=r"format 1, but this version of seqgan-ray reads format 2"):
        load_checkpoint(old, cfg)
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=str(newest)):
        load_checkpoint(newest, cfg)


def test_a_worker_refuses_a_version_it_does_not_hold_and_rearm_restores_it():
    """A restarted actor is a worker fresh from its constructor (version -1): it refuses to
    compute for a pool that expects another version, and `rearm` makes it the worker it was."""
    cfg = faults_config()
    learner, disc = GeneratorLearner(cfg, 0), DiscriminatorTrainer(cfg, 10)
    weights = (learner.rollout_weights(), disc.weights())
    seqs = learner.sample(4)
    armed, fresh = RolloutWorker(cfg, 100), RolloutWorker(cfg, 100)
    armed.set_weights(*weights, 3)
    for call in (lambda: fresh.rewards(seqs, expect=3), lambda: fresh.get_rng_state(expect=3),
                 lambda: fresh.set_weights(*weights, 4, expect=3)):
        with pytest.raises(StaleWeights, match="holds weights version -1, the call expects 3"):
            call()
    assert fresh.rearm(*weights, 3, data=None, seed=7) is True
    assert armed.rearm(*weights, 3, data=None, seed=7) is False  # not rebuilt: its stream is kept
    armed.rng.manual_seed(7)
    torch.testing.assert_close(fresh.rewards(seqs, expect=3), armed.rewards(seqs, expect=3), rtol=0, atol=0)


def test_a_batch_larger_than_the_data_is_an_error_before_anything_is_written(tmp_path):
    from seqgan_ray.tasks.token_file import DataError

    cfg = faults_config(data={"num_train": 8})  # generator.batch_size is 16
    with pytest.raises(DataError, match=r"8 training sequences, fewer than one batch \(generator.batch_size=16"):
        train(cfg, load_task(cfg.data), local_roles(cfg), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_pruning_keeps_the_newest_and_the_end_of_each_phase(tmp_path):
    from seqgan_ray.checkpoint import save_checkpoint

    (tmp_path / "notes.pt").write_bytes(b"not ours")
    for name in ("pretrain_g_000001", "pretrain_g_000002", "pretrain_d_000001", "pretrain_d_000002",
                 "adversarial_000001", "adversarial_000002", "adversarial_000003"):
        save_checkpoint(tmp_path, name, {"step": name}, keep=2)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == [
        "adversarial_000002.pt", "adversarial_000003.pt", "notes.pt", "pretrain_d_000002.pt",
        "pretrain_g_000002.pt"]
