"""Reliability: exact resume, signals, dying actors, numerical faults, bad checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from seqgan_ray.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from seqgan_ray.config import config_from_dict
from seqgan_ray.distributed.cluster import ActorResources, ClusterSpec
from seqgan_ray.oracle import load_task
from seqgan_ray.roles import GeneratorLearner, RolloutWorker
from seqgan_ray.train import (Interrupted, NumericalError, local_roles, ray_roles, train,
                              train_with_recovery)
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parent.parent
LONGER = {**TINY, "train": {**TINY["train"], "pretrain_g_epochs": 3, "pretrain_d_rounds": 2,
                            "adv_iterations": 3, "checkpoint_every": 2, "keep_checkpoints": 2}}


def _cfg(**sections):
    return config_from_dict({k: {**v, **sections.get(k, {})} for k, v in LONGER.items()})


def _stable(path: Path) -> list[dict]:
    """metrics.jsonl without wall-clock fields, which differ between any two runs."""
    return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
            for line in path.read_text().splitlines()]


def _signal_on_call(obj, method: str, call: int) -> None:
    """Make obj.method send this process SIGINT on its `call`-th call (a user's Ctrl-C)."""
    original, count = getattr(obj, method), [0]

    def wrapped(*args, **kwargs):
        count[0] += 1
        if count[0] == call:
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    setattr(obj, method, wrapped)


@pytest.mark.parametrize("method,call", [("pretrain_epoch", 2), ("train", 1), ("pg_step", 2)])
def test_interrupted_and_resumed_run_writes_the_same_metrics(tmp_path, method, call):
    cfg = _cfg()
    task = load_task(cfg.data)
    train(cfg, task, local_roles(cfg), tmp_path / "whole")

    roles = local_roles(cfg)
    target = roles.discriminator if method == "train" else roles.learner
    _signal_on_call(target, method, call)
    with pytest.raises(Interrupted):
        train(cfg, task, roles, tmp_path / "split")
    assert not (tmp_path / "split" / "summary.json").exists()
    train(cfg, task, local_roles(cfg), tmp_path / "split", resume=True)

    assert _stable(tmp_path / "split" / "metrics.jsonl") == _stable(tmp_path / "whole" / "metrics.jsonl")
    assert (tmp_path / "split" / "samples.txt").read_text() == (tmp_path / "whole" / "samples.txt").read_text()


def test_nan_loss_stops_at_once_naming_phase_step_and_tensor(tmp_path):
    cfg = _cfg()
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
    cfg = _cfg(train={"adv_iterations": 1})
    train(cfg, load_task(cfg.data), local_roles(cfg), tmp_path / "run")
    newest = latest_checkpoint(tmp_path / "run" / "checkpoints")
    other = _cfg(generator={"hidden_dim": 16})
    with pytest.raises(CheckpointError, match=r"generator.hidden_dim=8, but the config says 16"):
        load_checkpoint(newest, other)
    old = tmp_path / "old_format.pt"  # a checkpoint of format 1 (conv1d-layout filters)
    torch.save({**torch.load(newest, weights_only=True), "format": 1}, old)
    with pytest.raises(CheckpointError, match=r"format 1, but this version of seqgan-ray reads format 2"):
        load_checkpoint(old, cfg)
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=str(newest)):
        load_checkpoint(newest, cfg)


# ---------------------------------------------------------------- with Ray

RES = ActorResources(num_cpus=0.5, threads=1)
SPEC = ClusterSpec(path=Path("test"), name="test", embedded=True, num_cpus=2, rollout_workers=2,
                   rollout_worker=RES, learner=RES, discriminator=RES)


def _dies_once(base: type, method: str, marker: Path, *, after_calls: int = 1) -> type:
    """A role class whose process exits inside `method` once per marker file (a crash, an OOM kill)."""

    def dying(self, *args, **kwargs):
        self._calls = getattr(self, "_calls", 0) + 1
        if self._calls >= after_calls:
            try:  # the first process to create the marker dies; every other one lives
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                os._exit(1)
            except FileExistsError:
                pass
        return getattr(base, method)(self, *args, **kwargs)

    return type(f"Dying{base.__name__}", (base,), {method: dying})


@pytest.mark.ray
def test_rollout_actor_dying_inside_a_reward_computation_is_restarted(ray_cluster, tmp_path):
    cfg = _cfg()
    worker = _dies_once(RolloutWorker, "rewards", tmp_path / "died")
    roles = ray_roles(cfg, SPEC, 2, worker_cls=worker)
    try:
        result = train(cfg, load_task(cfg.data), roles, tmp_path / "run")
    finally:
        roles.shutdown()
    assert (tmp_path / "died").exists()
    assert result.summary["rollout_restarts"] == 1
    adv = [r for r in _stable(tmp_path / "run" / "metrics.jsonl")
           if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    assert [r["step"] for r in adv] == [1, 2, 3]
    assert adv[-1]["pool/restarts"] == 1.0


@pytest.mark.ray
def test_rollout_actor_killed_by_ray_mid_batch_is_restarted(ray_cluster, tmp_path):
    import ray

    cfg = _cfg()
    learner = GeneratorLearner(cfg, 0)
    from seqgan_ray.distributed.pool import RolloutPool

    slow = type("SlowWorker", (RolloutWorker,), {
        "rewards": lambda self, seqs: (time.sleep(3), RolloutWorker.rewards(self, seqs))[1]})
    pool = RolloutPool.actors(cfg, 100, 2, RES, worker_cls=slow)
    pool.set_weights(learner.rollout_weights(), None)
    seqs = learner.sample(8)
    expected_shape = (8, cfg.data.seq_len)
    import threading

    killer = threading.Timer(1.0, lambda: ray.kill(pool.workers[0], no_restart=False))
    killer.start()
    rewards = pool.rewards(seqs)
    killer.join()
    pool.shutdown()
    assert rewards.shape == expected_shape and torch.isfinite(rewards).all()
    assert pool.restarts == 1


@pytest.mark.ray
def test_learner_actor_death_recovers_from_the_last_checkpoint(ray_cluster, tmp_path):
    cfg = _cfg()
    learner = _dies_once(GeneratorLearner, "pg_step", tmp_path / "died", after_calls=2)
    result = train_with_recovery(cfg, load_task(cfg.data), lambda: ray_roles(cfg, SPEC, 2, learner_cls=learner),
                                 tmp_path / "run", retries=1)
    assert (tmp_path / "died").exists()
    records = _stable(tmp_path / "run" / "metrics.jsonl")
    adv = [r["step"] for r in records if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    assert adv == [1, 2, 3]  # iteration 2 redone from the checkpoint after pretraining D
    assert result.summary["oracle_nll_after_adversarial"] > 0


@pytest.mark.ray
def test_actors_stopped_by_the_same_signal_as_the_driver_are_not_restarted(ray_cluster, tmp_path):
    """When the stop signal reached the actors as well (a cluster's Ray, which this project did
    not start, sharing the driver's process group), the run stops and names its newest
    checkpoint instead of restarting against the stop."""
    from seqgan_ray.checkpoint import CheckpointError

    driver = os.getpid()

    def stopped(self, *args, **kwargs):  # the signal reaches the driver, and this actor dies of it
        os.kill(driver, signal.SIGTERM)
        os._exit(1)

    learner = type("StoppedLearner", (GeneratorLearner,), {"pg_step": stopped})
    cfg = _cfg()
    with pytest.raises(CheckpointError, match=r"stopped by SIGTERM, which reached Ray's actors as well.*"
                                              r"Resume from pretrain_d_\d+\.pt with: python run\.py --resume"):
        train_with_recovery(cfg, load_task(cfg.data), lambda: ray_roles(cfg, SPEC, 2, learner_cls=learner),
                            tmp_path / "run", retries=2)
    adv = [r for r in _stable(tmp_path / "run" / "metrics.jsonl") if r["phase"] == "adversarial"]
    assert adv == []  # not restarted: no iteration was redone


@pytest.mark.e2e
@pytest.mark.parametrize("to_group", [False, True], ids=["driver", "process-group"])
def test_sigterm_checkpoints_and_resume_finishes_the_run(tmp_path, to_group):
    """SIGTERM to the driver, or to its whole process group as `timeout`, systemd and batch
    schedulers send it: either way the current step is checkpointed. (To the group, it used to
    kill Ray's processes too, and the driver with them, losing the steps since the last
    checkpoint; the embedded Ray's processes now start with SIGTERM blocked.)"""
    cfg_path = tmp_path / "cfg.yaml"
    big = {**LONGER, "train": {**LONGER["train"], "adv_iterations": 30, "checkpoint_every": 100},
           "run": {**LONGER["run"], "out_dir": str(tmp_path / "runs"), "name": "r"}}
    cfg_path.write_text(yaml.safe_dump(big))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(cfg_path)], cwd=ROOT,
                            env=env, stderr=subprocess.PIPE, text=True, start_new_session=to_group)
    metrics = tmp_path / "runs" / "r" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.exists() and '"adversarial"' in metrics.read_text()):
        time.sleep(0.5)
    if to_group:
        os.killpg(proc.pid, signal.SIGTERM)  # the driver, Ray's processes and the actors
    else:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "resume with: python run.py --resume" in err
    stopped_at = latest_checkpoint(tmp_path / "runs" / "r" / "checkpoints")
    assert stopped_at.name.startswith("adversarial_")
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "--resume", str(tmp_path / "runs" / "r")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    adv = [r["step"] for r in _stable(metrics) if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    assert adv == list(range(1, 31))


def test_a_batch_larger_than_the_data_is_an_error_before_anything_is_written(tmp_path):
    from seqgan_ray.data import DataError

    cfg = _cfg(data={"num_train": 8})  # generator.batch_size is 16
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
