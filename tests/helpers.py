"""Helpers that tests of more than one layer (tests/unit, tests/ray, tests/e2e) use."""

import json
import os
import random
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml

from seqgan_ray.config import config_from_dict
from seqgan_ray.tasks.corpus import PrepareOptions, prepare
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parent.parent  # the repository
# TINY, a little longer: enough steps for checkpoints inside each phase
LONGER = {**TINY, "train": {**TINY["train"], "pretrain_g_epochs": 3, "pretrain_d_rounds": 2,
                            "adv_iterations": 3, "checkpoint_every": 2, "keep_checkpoints": 2}}


def faults_config(**sections):
    return config_from_dict({k: {**v, **sections.get(k, {})} for k, v in LONGER.items()})


def stable_metrics(path: Path) -> list[dict]:
    """metrics.jsonl without wall-clock fields, which differ between any two runs."""
    return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
            for line in path.read_text().splitlines()]


def token_share(learner, token=3, n=2000):
    return float((learner.sample(n) == token).float().mean())


def learns_token_share(cfg, run_dir: Path):
    """Train `cfg` in-process into `run_dir` with a reward for token 3 (tests.reward_plugins:
    TokenShare) for 20 iterations. Returns the run's Result, and whether the share of token 3
    in the generator's samples at least doubled from the first iteration to the end (and passed
    0.1), and whether D's parameters stayed as they were after the first iteration."""
    from seqgan_ray.tasks import load_task
    from seqgan_ray.trainer import Trainer, local_roles

    cfg.rollout.reward = "tests.reward_plugins:TokenShare"
    cfg.generator.adv_lr = 0.05
    cfg.train.adv_iterations, cfg.train.eval_every, cfg.train.checkpoint_every = 20, 10, 10
    roles = local_roles(cfg)
    trainer, seen = Trainer(cfg, load_task(cfg.data), roles, run_dir), {}

    def first_iteration(t, metrics):
        if t.step == 1:
            seen["share"] = token_share(roles.learner)
            seen["d"] = [p.detach().clone() for p in roles.discriminator.discriminator.parameters()]

    trainer.on_iteration = first_iteration
    result = trainer.run()
    after = token_share(roles.learner)
    learned = after > 2 * seen["share"] and after > 0.1
    d_untouched = all(torch.equal(a, b) for a, b in zip(seen["d"], roles.discriminator.discriminator.parameters()))
    return result, learned, d_untouched


def write_file(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def run_prepare(tmp_path: Path, *inputs: Path, out: str = "out", **options) -> dict:
    return prepare(PrepareOptions(inputs=tuple(inputs), out=tmp_path / out, **options))


def reproduce_file(tmp_path, runs, **section):
    data = {k: dict(v) for k, v in TINY.items()}
    data["train"].update(adv_iterations=2, checkpoint_every=10)
    data["reproduce"] = {"out_dir": str(tmp_path / "runs"), "report": str(tmp_path / "doc" / "synthetic.md"),
                         "runs": runs, "baseline": "mle", **section}
    path = tmp_path / "reproduce.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def write_sweep_file(tmp_path: Path, tune: dict, base: dict | None = None) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**(base or TINY), "tune": tune}))
    return path


def text_corpus(folder: Path) -> tuple[Path, Path]:
    """A little grammar: sentences of 3-6 words."""
    r = random.Random(0)
    subj, verb = ["a man", "a woman", "the dog", "two kids"], ["sits on", "runs to", "looks at"]
    obj = ["the table", "a bench", "the street", "a tree"]

    def sentence() -> str:
        return " ".join([r.choice(subj), r.choice(verb), r.choice(obj)][: r.choice([2, 3])])

    folder.mkdir(parents=True, exist_ok=True)
    train, test = folder / "train.txt", folder / "test.txt"
    train.write_text("\n".join(sentence() for _ in range(300)) + "\n")
    test.write_text("\n".join(sentence() for _ in range(60)) + "\n")
    return train, test


TINY_TEXT = ["generator.emb_dim=8", "generator.hidden_dim=8", "generator.batch_size=16",
             "discriminator.emb_dim=8", "discriminator.filter_sizes=[1,2,3]",
             "discriminator.num_filters=[6,6,6]", "discriminator.batch_size=32",
             "train.pretrain_g_epochs=2", "train.pretrain_d_rounds=1", "train.adv_iterations=2",
             "train.eval_every=1", "train.num_negatives=64", "train.eval_samples=64",
             "rollout.num_rollouts=2", "run.progress=false"]


def run_py(*args: str, cwd: Path = ROOT, timeout: int = 300,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in (env or os.environ).items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "run": {**TINY["run"], "out_dir": str(tmp_path / "runs")}}))
    return path


@contextmanager
def torch_threads(n: int):
    """This process's torch threads set to `n` (as an actor's `threads`: float sums in the same
    order, so in-process and actor results can be compared bit for bit), then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def assert_ray_matches_one_process(cfg, tmp_path: Path) -> None:
    """Train `cfg` with its roles as Ray actors (one rollout actor, on the test's embedded Ray) and
    in one process: the same metrics, to 1e-4."""
    from seqgan_ray.distributed.cluster import ActorResources, ClusterSpec
    from seqgan_ray.distributed.recovery import ray_roles
    from seqgan_ray.tasks.synthetic import load_task
    from seqgan_ray.trainer import local_roles, train

    task = load_task(cfg.data)
    res = ActorResources(num_cpus=0.5, threads=1)
    spec = ClusterSpec(path=tmp_path / "c.yaml", name="test", embedded=True, num_cpus=2, rollout_workers=1,
                       rollout_worker=res, learner=res, discriminator=res)
    roles = ray_roles(cfg, spec, 1)
    try:
        train(cfg, task, roles, tmp_path / "ray")
    finally:
        roles.shutdown()
    train(cfg, task, local_roles(cfg), tmp_path / "local")
    ray_rows = stable_metrics(tmp_path / "ray" / "metrics.jsonl")
    local_rows = stable_metrics(tmp_path / "local" / "metrics.jsonl")
    assert [r.keys() for r in ray_rows] == [r.keys() for r in local_rows]
    for a, b in zip(ray_rows, local_rows):
        for key, value in a.items():
            if isinstance(value, float):
                assert abs(value - b[key]) <= 1e-4 * max(1.0, abs(b[key])), (key, value, b[key])


def assert_resumes_exactly(cfg, task, tmp_path: Path, *, role: str, method: str, call: int) -> None:
    """Run `cfg` again into tmp_path/split, stopped by a signal inside the `call`-th call of the
    `role` role's `method`, then resumed: the metrics of the uninterrupted tmp_path/whole."""
    import pytest

    from seqgan_ray.trainer import Interrupted, local_roles, train
    from tests.e2e.test_faults import _signal_on_call

    roles = local_roles(cfg)
    _signal_on_call(getattr(roles, role), method, call)
    with pytest.raises(Interrupted):
        train(cfg, task, roles, tmp_path / "split")
    train(cfg, task, local_roles(cfg), tmp_path / "split", resume=True)
    assert stable_metrics(tmp_path / "split" / "metrics.jsonl") == stable_metrics(tmp_path / "whole" / "metrics.jsonl")
