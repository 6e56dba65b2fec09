"""Reliability: exact resume, signals, dying actors, numerical faults, bad checkpoints."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from seqgan_ray.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from seqgan_ray.config import config_from_dict
from seqgan_ray.distributed.cluster import ActorResources, ClusterSpec
from seqgan_ray.oracle import load_task
from seqgan_ray.roles import DiscriminatorTrainer, GeneratorLearner, RolloutWorker, StaleWeights
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


def test_a_worker_refuses_a_version_it_does_not_hold_and_rearm_restores_it():
    """A restarted actor is a worker fresh from its constructor (version -1): it refuses to
    compute for a pool that expects another version, and `rearm` makes it the worker it was."""
    cfg = _cfg()
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


def test_checkpoints_by_wall_time_as_well_as_by_step(tmp_path):
    task = load_task(_cfg().data)
    names, metrics = {}, {}
    for every_s in (0, 1e-6):  # never by time; after every step
        cfg = _cfg(train={"checkpoint_every": 100, "checkpoint_every_s": every_s, "keep_checkpoints": 20})
        train(cfg, task, local_roles(cfg), tmp_path / str(every_s))
        names[every_s] = sorted(p.name for p in (tmp_path / str(every_s) / "checkpoints").glob("*.pt"))
        metrics[every_s] = _stable(tmp_path / str(every_s) / "metrics.jsonl")
    assert names[0] == ["adversarial_000003.pt", "pretrain_d_000002.pt", "pretrain_g_000003.pt"]
    assert names[1e-6] == [f"adversarial_00000{i}.pt" for i in (1, 2, 3)] + \
        [f"pretrain_d_00000{i}.pt" for i in (1, 2)] + [f"pretrain_g_00000{i}.pt" for i in (1, 2, 3)]
    assert metrics[0] == metrics[1e-6]  # checkpointing draws no random numbers


def test_rollout_restarts_carry_across_a_resume(tmp_path):
    """summary.json's rollout_restarts counts the whole run's: a resumed run starts from the
    checkpoint's count (a checkpoint written before the count was kept reads as 0)."""
    cfg = _cfg()
    task = load_task(cfg.data)
    for kept in (True, False):
        run = tmp_path / ("kept" if kept else "old")
        roles = local_roles(cfg)
        roles.pool.restarts = 3  # as if a rollout actor had been restarted three times
        _signal_on_call(roles.learner, "pg_step", 2)
        with pytest.raises(Interrupted):
            train(cfg, task, roles, run)
        if not kept:  # a checkpoint as written before the count was kept
            path = latest_checkpoint(run / "checkpoints")
            state = torch.load(path, weights_only=True)
            del state["rollout_restarts"]
            torch.save(state, path)
        result = train(cfg, task, local_roles(cfg), run, resume=True)
        assert result.summary["rollout_restarts"] == (3 if kept else 0)


@contextlib.contextmanager
def _unwritable(folder: Path, monkeypatch):
    """Make `folder` refuse new files: `chattr +i` as root (root ignores permissions), chmod
    0o555 otherwise; where chattr does not work, torch.save fails as on a full disk."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield "read-only"
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        try:
            yield "immutable"
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        return

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    yield "full"
    monkeypatch.undo()


def test_a_checkpoint_that_cannot_be_written_stops_with_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    from seqgan_ray.cli import main

    data = {**LONGER, "train": {**LONGER["train"], "adv_iterations": 1},
            "run": {**LONGER["run"], "out_dir": str(tmp_path / "runs"), "name": "r"}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(data))
    assert main(["--config", str(tmp_path / "cfg.yaml"), "--no-ray", "--quiet"]) == 0
    run, ckpts = tmp_path / "runs" / "r", tmp_path / "runs" / "r" / "checkpoints"
    before = {p.name: p.read_bytes() for p in ckpts.iterdir()}
    capsys.readouterr()
    with _unwritable(ckpts, monkeypatch) as how:
        code = main(["--resume", str(run), "--no-ray", "--quiet", "train.adv_iterations=2"])
        err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot write checkpoint {ckpts / 'adversarial_000002.pt'} (")
    assert last.endswith(f"the newest is adversarial_000001.pt: make room or make the folder writable, "
                         f"then resume with: python run.py --resume {run}"), (how, last)
    assert {p.name: p.read_bytes() for p in ckpts.iterdir()} == before  # nothing lost, no temporary file
    assert main(["--resume", str(run), "--no-ray", "--quiet", "train.adv_iterations=2"]) == 0
    adv = [r["step"] for r in _stable(run / "metrics.jsonl") if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    assert adv == [1, 2]


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
        "rewards": lambda self, seqs, **kw: (time.sleep(3), RolloutWorker.rewards(self, seqs, **kw))[1]})
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


def _pid(actor) -> int:
    import ray

    return ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))


def _sigkill(actor, *, wait: bool = False) -> None:
    """SIGKILL an actor's process (an OOM kill, a crash); with `wait`, until Ray has restarted it."""
    from seqgan_ray.distributed.pool import ACTOR_ERRORS

    pid = _pid(actor)
    os.kill(pid, signal.SIGKILL)
    while wait:
        try:
            wait = _pid(actor) == pid
        except ACTOR_ERRORS:
            time.sleep(0.1)


def _versions(pool) -> list[int]:
    import ray

    return ray.get([w.__ray_call__.remote(lambda self: self.version) for w in pool.workers])


@pytest.mark.ray
def test_rollout_actor_restarted_between_calls_is_rearmed_before_it_computes(ray_cluster):
    """An actor that dies while idle comes back from its constructor (untrained weights,
    version -1). Every pool call finds it out, re-arms it and counts the restart; none lets it
    compute with the constructor's weights."""
    import ray

    from seqgan_ray.distributed.pool import ACTOR_ERRORS, RolloutPool, rearm_seed

    cfg = _cfg()
    learner, disc = GeneratorLearner(cfg, 0), DiscriminatorTrainer(cfg, 10)
    weights = (learner.rollout_weights(), disc.weights())
    seqs = learner.sample(8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the actors: bitwise-equal floats
    pool = RolloutPool.actors(cfg, 100, 2, RES)
    try:
        pool.set_weights(*weights)
        _sigkill(pool.workers[0], wait=True)
        rewards = pool.rewards(seqs)
        assert pool.restarts == 1 and _versions(pool) == [1, 1]
        rearmed = RolloutWorker(cfg, 100)  # what actor 0 must be: the current weights, a fresh stream
        rearmed.set_weights(*weights, 1)
        rearmed.rng.manual_seed(rearm_seed(100, 1, 0))
        torch.testing.assert_close(rewards[:4], rearmed.rewards(seqs[:4]), rtol=0, atol=0)
        assert not torch.equal(rewards[:4], RolloutWorker(cfg, 100).rewards(seqs[:4]))  # the untrained one

        for w in pool.workers:  # both at once, not waited for: the call finds them dead or restarting
            _sigkill(w)
        pool.set_weights(*weights)  # a new version
        assert pool.restarts == 3 and _versions(pool) == [2, 2]
        _sigkill(pool.workers[0], wait=True)
        for w in pool.workers:  # actor 0 dies a second time in one idle spell: 3 restarts in all
            _sigkill(w)
        states = pool.rng_states()  # a checkpoint's call
        assert pool.restarts == 6 and _versions(pool) == [2, 2]
        assert torch.equal(states[0], torch.Generator().manual_seed(rearm_seed(100, 2, 3)).get_state())
        # The other calls take the same path; a worker put back at version -1 stands for a
        # restarted actor here (a real restart costs ~6 s on 2 cores).
        for call in (lambda: pool.set_rng_states(states), lambda: pool.set_data(learner.sample(32))):
            ray.get(pool.workers[1].__ray_call__.remote(lambda self: setattr(self, "version", -1)))
            call()
            assert _versions(pool) == [2, 2]
        assert pool.restarts == 8
        ray.kill(pool.workers[0])  # for good (no_restart): the pool says so at once, waits for nothing
        t0 = time.perf_counter()
        with pytest.raises(ACTOR_ERRORS):
            pool.rewards(seqs)
        assert time.perf_counter() - t0 < 30
    finally:
        pool.shutdown()
        torch.set_num_threads(threads)


def _fingerprint(*state_dicts) -> str:
    h = hashlib.sha256()
    for sd in state_dicts:
        for v in sd.values():
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.ray
def test_actors_of_every_role_killed_at_chosen_moments(ray_cluster, tmp_path, capsys):
    """Fault injection over a whole run, every death while the actor is idle: rollout actors
    SIGKILLed during an evaluation, a checkpoint and D's training, then the learner and the
    discriminator during an evaluation. The run completes every iteration; every reward was
    computed by a worker holding the weights last sent; the counters equal the deaths, across
    the recovery; the wall time covers both attempts."""
    from seqgan_ray.roles import cpu_state

    cfg = _cfg(train={"checkpoint_every": 1})  # 3 adversarial iterations
    task = load_task(cfg.data)
    expected, computed = tmp_path / "expected", tmp_path / "computed"

    def rewards(self, seqs, **kwargs):  # runs in the actor: which weights does it compute with?
        out = RolloutWorker.rewards(self, seqs, **kwargs)  # StaleWeights first, if it holds others
        with open(computed, "a") as f:
            f.write(f"{expected.read_text()} {_fingerprint(cpu_state(self.policy), cpu_state(self.discriminator))}\n")
        return out

    recording = type("RecordingWorker", (RolloutWorker,), {"rewards": rewards})
    calls: dict[str, int] = {}
    deaths = {"rollout": 0, "learner": 0, "discriminator": 0}
    sent, started = {}, []

    def hook(obj, method, plan, *, after=None):
        """Before the n-th call of `method` (counted over the whole run, both attempts), kill
        the actors plan[n] names."""
        original = getattr(obj, method)

        def wrapped(*args, **kwargs):
            n = calls[method] = calls.get(method, 0) + 1
            for role, actor in plan.get(n, ()):
                _sigkill(actor())
                deaths[role] += 1
            out = original(*args, **kwargs)
            if after is not None:
                after()
            return out

        setattr(obj, method, wrapped)

    now: dict[str, Any] = {}  # the attempt's roles
    rollout = lambda i: ("rollout", lambda: now["roles"].pool.workers[i])
    learner_and_d = [("learner", lambda: now["roles"].learner.actor),
                     ("discriminator", lambda: now["roles"].discriminator.actor)]

    def make_roles():
        roles = now["roles"] = ray_roles(cfg, SPEC, 2, worker_cls=recording)
        set_weights = roles.pool.set_weights

        def send(policy, discriminator):  # the weights every worker must hold from now on
            sent.update({k: v for k, v in (("policy", policy), ("disc", discriminator)) if v is not None})
            expected.write_text(_fingerprint(sent["policy"], sent["disc"]))
            set_weights(policy, discriminator)

        roles.pool.set_weights = send
        # training starts once the actors are up (Roles.devices): the wall time's origin
        hook(roles.pool, "devices", {}, after=lambda: started.append(time.perf_counter()))
        # checkpoints (the pool's rng_states): 3 in G's pretraining, 2 in D's, then one an
        # iteration; D's training: 2 pretraining rounds, then one an iteration
        hook(roles.pool, "rng_states", {6: [rollout(1)]})  # iteration 1
        hook(roles.discriminator, "train", {4: [rollout(0)]})  # iteration 2
        return roles

    # evaluations: 4 in G's pretraining, then one an iteration. Iteration 2's sends the run
    # back to iteration 1's checkpoint, so the third rollout death is counted only by the carry.
    hook(task, "evaluate", {5: [rollout(0)], 6: learner_and_d})
    try:
        result = train_with_recovery(cfg, task, make_roles, tmp_path / "run", retries=1)
    finally:
        del task.evaluate
    wall = time.perf_counter() - started[0]
    err = capsys.readouterr().err

    assert deaths == {"rollout": 3, "learner": 1, "discriminator": 1}
    assert err.count("restarting from the last checkpoint") == 1
    assert result.summary["rollout_restarts"] == 3  # the third after the checkpoint resumed from
    adv = [r for r in _stable(tmp_path / "run" / "metrics.jsonl") if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    assert [r["step"] for r in adv] == [1, 2, 3]
    assert adv[-1]["pool/restarts"] == 3.0
    lines = computed.read_text().splitlines()
    assert len(lines) == 2 * 4 and all(want == have for want, have in map(str.split, lines))
    assert wall - 2 < result.summary["wall_time_s"] <= wall  # both attempts' time


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
