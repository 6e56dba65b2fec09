"""Reliability on Ray: rollout, learner and discriminator actors killed at chosen moments."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from seqgan_ray.checkpoint import CheckpointError
from seqgan_ray.distributed.cluster import ActorResources, ClusterSpec
from seqgan_ray.distributed.recovery import ray_roles, train_with_recovery
from seqgan_ray.roles import DiscriminatorTrainer, GeneratorLearner, RolloutWorker
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import train
from tests.helpers import faults_config, stable_metrics

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


def test_rollout_actor_dying_inside_a_reward_computation_is_restarted(ray_cluster, tmp_path):
    cfg = faults_config()
    worker = _dies_once(RolloutWorker, "rewards", tmp_path / "died")
    roles = ray_roles(cfg, SPEC, 2, worker_cls=worker)
    try:
        result = train(cfg, load_task(cfg.data), roles, tmp_path / "run")
    finally:
        roles.shutdown()
    assert (tmp_path / "died").exists()
    assert result.summary["rollout_restarts"] == 1
    adv = [r for r in stable_metrics(tmp_path / "run" / "metrics.jsonl")
           if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    assert [r["step"] for r in adv] == [1, 2, 3]
    assert adv[-1]["pool/restarts"] == 1.0


def test_rollout_actor_killed_by_ray_mid_batch_is_restarted(ray_cluster, tmp_path):
    import ray

    cfg = faults_config()
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


def test_rollout_actor_restarted_between_calls_is_rearmed_before_it_computes(ray_cluster):
    """An actor that dies while idle comes back from its constructor (untrained weights,
    version -1). Every pool call finds it out, re-arms it and counts the restart; none lets it
    compute with the constructor's weights."""
    import ray

    from seqgan_ray.distributed.pool import ACTOR_ERRORS, RolloutPool, rearm_seed

    cfg = faults_config()
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


def test_actors_of_every_role_killed_at_chosen_moments(ray_cluster, tmp_path, capsys):
    """Fault injection over a whole run, every death while the actor is idle: rollout actors
    SIGKILLed during an evaluation, a checkpoint and D's training, then the learner and the
    discriminator during an evaluation. The run completes every iteration; every reward was
    computed by a worker holding the weights last sent; the counters equal the deaths, across
    the recovery; the wall time covers both attempts."""
    from seqgan_ray.roles import cpu_state

    cfg = faults_config(train={"checkpoint_every": 1})  # 3 adversarial iterations
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
    # back to iteration 1's checkpoint, so the third rollout death is counted only by events.jsonl.
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
    assert result.summary["restarts"] == deaths  # each kind, from events.jsonl
    assert (result.summary["recoveries"], result.summary["attempts"], result.summary["gave_up"]) == (1, 2, 0)
    adv = [r for r in stable_metrics(tmp_path / "run" / "metrics.jsonl") if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    assert [r["step"] for r in adv] == [1, 2, 3]
    assert adv[-1]["pool/restarts"] == 3.0
    lines = computed.read_text().splitlines()
    assert len(lines) == 2 * 4 and all(want == have for want, have in map(str.split, lines))
    assert wall - 2 < result.summary["wall_time_s"] <= wall  # both attempts' time


def test_learner_actor_death_recovers_from_the_last_checkpoint(ray_cluster, tmp_path):
    cfg = faults_config()
    learner = _dies_once(GeneratorLearner, "pg_step", tmp_path / "died", after_calls=2)
    result = train_with_recovery(cfg, load_task(cfg.data), lambda: ray_roles(cfg, SPEC, 2, learner_cls=learner),
                                 tmp_path / "run", retries=1)
    assert (tmp_path / "died").exists()
    records = stable_metrics(tmp_path / "run" / "metrics.jsonl")
    adv = [r["step"] for r in records if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    assert adv == [1, 2, 3]  # iteration 2 redone from the checkpoint after pretraining D
    assert result.summary["oracle_nll_after_adversarial"] > 0


def test_actors_stopped_by_the_same_signal_as_the_driver_are_not_restarted(ray_cluster, tmp_path):
    """When the stop signal reached the actors as well (a cluster's Ray, which this project did
    not start, sharing the driver's process group), the run stops and names its newest
    checkpoint instead of restarting against the stop."""

    driver = os.getpid()

    def stopped(self, *args, **kwargs):  # the signal reaches the driver, and this actor dies of it
        os.kill(driver, signal.SIGTERM)
        os._exit(1)

    learner = type("StoppedLearner", (GeneratorLearner,), {"pg_step": stopped})
    cfg = faults_config()
    with pytest.raises(CheckpointError, match=r"stopped by SIGTERM, which reached Ray's actors as well.*"
                                              r"Resume from pretrain_d_\d+\.pt with: python run\.py --resume"):
        train_with_recovery(cfg, load_task(cfg.data), lambda: ray_roles(cfg, SPEC, 2, learner_cls=learner),
                            tmp_path / "run", retries=2)
    adv = [r for r in stable_metrics(tmp_path / "run" / "metrics.jsonl") if r["phase"] == "adversarial"]
    assert adv == []  # not restarted: no iteration was redone


def test_counters_add_up_over_a_give_up_and_a_resume(ray_cluster, tmp_path):
    """The issue's undercount, scaled down: a rollout actor killed (and restarted by Ray)
    just before the learner, so no pool call finds it; a recovery; the discriminator killed,
    and the run gives up (retries used up); a resume in a new call, where one more rollout
    actor dies. summary.json counts every death of each kind, the recovery, the give-up and
    the resume, and every iteration is recorded once."""
    cfg = faults_config(train={"checkpoint_every": 1})
    task = load_task(cfg.data)
    now, evaluations = {}, [0]

    def make_roles():
        now["roles"] = ray_roles(cfg, SPEC, 2)
        return now["roles"]

    evaluate = task.evaluate

    def killing(*args, **kwargs):  # evaluations: 4 in G's pretraining, then one an iteration
        evaluations[0] += 1
        roles = now["roles"]
        if evaluations[0] == 5:  # iteration 1: a rollout actor, then the learner
            _sigkill(roles.pool.workers[1], wait=True)
            _sigkill(roles.learner.actor)
        elif evaluations[0] == 6:  # iteration 1 again, after the recovery
            _sigkill(roles.discriminator.actor)
        elif evaluations[0] == 7:  # iteration 1 again, after the resume
            _sigkill(roles.pool.workers[0])
        return evaluate(*args, **kwargs)

    task.evaluate = killing
    try:
        with pytest.raises(CheckpointError, match="after 1 restart"):
            train_with_recovery(cfg, task, make_roles, tmp_path / "run", retries=1)
        result = train_with_recovery(cfg, task, make_roles, tmp_path / "run", resume=True, retries=1)
    finally:
        del task.evaluate
    s = result.summary
    assert s["restarts"] == {"rollout": 2, "learner": 1, "discriminator": 1}
    assert s["rollout_restarts"] == 2
    assert (s["recoveries"], s["gave_up"], s["resumes"], s["attempts"]) == (1, 1, 1, 3)
    adv = [r["step"] for r in stable_metrics(tmp_path / "run" / "metrics.jsonl")
           if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    assert adv == [1, 2, 3]
