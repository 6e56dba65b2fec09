"""Chaos: actors of every kind SIGKILLed at random moments through a whole small run of each
method family on the real embedded Ray (SeqGAN's rollouts, LeakGAN, RelGAN's relaxed
gradients). Every step is recorded once, the counters equal the kills, and the final
NLL-oracle lies within the evaluation's 95% interval of the undisturbed runs: the run of the
same seed, and, since a re-armed rollout actor draws a fresh random stream by design (a
recovery alone replays exactly, from the checkpoint's random states), runs of the same seed
whose rollout streams were seeded otherwise (over four such streams LeakGAN's final
NLL-oracle spread 3.75-3.93, SeqGAN's 3.84-3.86, RelGAN's, which rolls nothing out, none).

A second thread plays the fault: it watches the run's metrics.jsonl and events.jsonl and
kills the actors' processes (found among our raylet's children by their process titles,
`ray::RolloutWorker` ...), as an OOM killer or a crashing node would. A learner or
discriminator is killed only once a checkpoint exists and the last recovery has started
(else the run would, rightly, give up), and nothing after the run's second-to-last step
(a death after the last pool call is counted from Ray's table, but Ray must have seen it)."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from seqgan_ray.distributed.cluster import ActorResources, ClusterSpec
from seqgan_ray.distributed.recovery import ray_roles, train_with_recovery
from seqgan_ray.events import EventLog
from seqgan_ray.runlog import read_metrics
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.roles import DiscriminatorTrainer, GeneratorLearner, LocalRolloutPool
from seqgan_ray.trainer import Roles, local_roles, train
from tests.e2e.test_leakgan import leakgan_config
from tests.e2e.test_relaxed import relaxed_config
from tests.helpers import faults_config, stable_metrics

RES = ActorResources(num_cpus=0.5, threads=1)
SPEC = ClusterSpec(path=Path("test"), name="test", embedded=True, num_cpus=2, rollout_workers=2,
                   rollout_worker=RES, learner=RES, discriminator=RES)
TITLES = {"rollout": "ray::RolloutWorker", "learner": "ray::GeneratorLearner",
          "discriminator": "ray::DiscriminatorTrainer"}
ITERATIONS = 16


def _configs():
    seqgan = faults_config(train={"adv_iterations": ITERATIONS, "checkpoint_every": 2, "eval_every": 4})
    leakgan = leakgan_config()
    leakgan.train.adv_iterations, leakgan.train.checkpoint_every, leakgan.train.eval_every = ITERATIONS, 2, 4
    relgan = relaxed_config("relgan")
    relgan.train.adv_iterations, relgan.train.checkpoint_every, relgan.train.eval_every = ITERATIONS, 2, 4
    return {"seqgan": seqgan, "leakgan": leakgan, "relgan": relgan}


def _raylet_pid() -> int:
    import ray

    return ray._private.worker._global_node.all_processes["raylet"][0].process.pid


def _actor_pids(kind: str) -> list[int]:
    """Our cluster's live processes of actors of `kind` (another cluster on this machine is left alone)."""
    import psutil

    pids = []
    for child in psutil.Process(_raylet_pid()).children():
        try:
            if child.cmdline()[0].startswith(TITLES[kind]) and child.status() != psutil.STATUS_ZOMBIE:
                pids.append(child.pid)
        except (psutil.Error, IndexError):
            continue
    return pids


def _position(run: Path) -> tuple[int, int]:
    """(phase index, step) of the run's latest record; (-1, 0) before any."""
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        last = json.loads(lines[-1])
    except (OSError, IndexError, json.JSONDecodeError):
        return -1, 0
    return ("pretrain_g", "pretrain_d", "adversarial").index(last["phase"]), last["step"]


class Chaos(threading.Thread):
    """Kill `plan`'s actor kinds in order, each at a random moment of the run's adversarial
    phase (the first rollout kill during pretraining), counting the kills made."""

    def __init__(self, run: Path, plan: list[str], rng: random.Random):
        super().__init__(daemon=True)
        self.folder, self.plan, self.rng = run, plan, rng
        self.kills = dict.fromkeys(TITLES, 0)
        self.done = threading.Event()
        # the adversarial step at (or after) which each kill comes; the first: during pretraining
        self.at = sorted(rng.sample(range(2, ITERATIONS - 6), len(plan) - 1))

    def _ready(self, kind: str, index: int) -> bool:
        if index == 0:
            return _position(self.folder) >= (0, 1)
        if _position(self.folder) < (2, self.at[index - 1]) or _position(self.folder) >= (2, ITERATIONS - 1):
            return False
        if kind == "rollout":
            return True
        events = EventLog(self.folder).read()
        recoveries = sum(e["event"] == "recovery" for e in events)
        started = sum(e["event"] == "start" for e in events)
        has_checkpoint = any((self.folder / "checkpoints").glob("*.pt"))
        return has_checkpoint and started == recoveries + 1  # the last recovery's attempt is under way

    def run(self) -> None:
        for index, kind in enumerate(self.plan):
            while not self.done.is_set() and not (self._ready(kind, index) and _actor_pids(kind)):
                time.sleep(0.05)
            if self.done.is_set():
                return
            time.sleep(self.rng.uniform(0.0, 0.3))  # somewhere inside the step under way
            pids = _actor_pids(kind)
            if not pids:
                continue
            try:
                os.kill(self.rng.choice(pids), signal.SIGKILL)
                self.kills[kind] += 1
            except ProcessLookupError:
                pass
            time.sleep(1.0)  # Ray sees the death before anything else is killed


@pytest.mark.parametrize("method", ["seqgan", "leakgan", "relgan"])
def test_random_kills_of_every_role_through_a_whole_run(ray_cluster, tmp_path, method):
    cfg = _configs()[method]
    task = load_task(cfg.data)
    # in-process, the Ray pool's two workers and seeds: the numbers of an undisturbed Ray run
    undisturbed = train(cfg, task, local_roles(cfg, rollout_workers=2), tmp_path / "undisturbed")
    seed = cfg.run.seed
    others = [train(cfg, task, Roles(GeneratorLearner(cfg, seed), DiscriminatorTrainer(cfg, seed + 10),
                                     LocalRolloutPool(cfg, seed + 100 + 1000 * k, 2)), tmp_path / f"streams{k}")
              for k in (1, 2, 3)]

    rng = random.Random(f"chaos-{method}")
    plan = ["rollout"] + rng.sample(["rollout", "learner", "discriminator"], 3)
    chaos = Chaos(tmp_path / "chaos", plan, rng)
    chaos.start()
    try:
        result = train_with_recovery(cfg, task, lambda: ray_roles(cfg, SPEC, 2), tmp_path / "chaos", retries=2)
    finally:
        chaos.done.set()
        chaos.join()
    s = result.summary
    print(f"{method}: kills {chaos.kills}; summary restarts {s['restarts']}, recoveries {s['recoveries']}, "
          f"attempts {s['attempts']}, wall {s['wall_time_s']:.1f} s")
    assert chaos.kills == {"rollout": 2, "learner": 1, "discriminator": 1}, chaos.kills  # the plan, all made
    assert s["restarts"] == chaos.kills
    assert (s["recoveries"], s["attempts"], s["gave_up"], s["resumes"]) == (2, 3, 0, 0)

    # every record once: the same (phase, step, keys) sequence as the undisturbed run
    shape = lambda rows: [(r["phase"], r["step"], sorted(r)) for r in rows]
    disturbed_rows = stable_metrics(tmp_path / "chaos" / "metrics.jsonl")
    assert shape(disturbed_rows) == shape(stable_metrics(tmp_path / "undisturbed" / "metrics.jsonl"))
    print(f"{method}: {len(disturbed_rows)} records, each once; "
          f"{sum(r['phase'] == 'adversarial' and 'eval/oracle_nll' not in r for r in disturbed_rows)} iterations")
    final = read_metrics(tmp_path / "chaos" / "metrics.jsonl")[-1]
    references = [r.summary["oracle_nll_after_adversarial"] for r in (undisturbed, *others)]
    ci = final["eval/oracle_nll_ci95"]
    print(f"{method}: final NLL-oracle {final['eval/oracle_nll']:.3f} ± {ci:.3f}; undisturbed "
          f"{references[0]:.3f}, other rollout streams {', '.join(f'{x:.3f}' for x in references[1:])}")
    assert min(references) - ci <= final["eval/oracle_nll"] <= max(references) + ci
    assert undisturbed.summary["restarts"] == {"rollout": 0, "learner": 0, "discriminator": 0}
