"""Reliability of whole runs: exact resume, signals, checkpoints by time, a checkpoint that cannot
be written."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from seqgan_ray.checkpoint import latest_checkpoint
from seqgan_ray.tasks.synthetic import load_task
from seqgan_ray.trainer import Interrupted, local_roles, train
from tests.helpers import LONGER, ROOT, faults_config, stable_metrics


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
    cfg = faults_config()
    task = load_task(cfg.data)
    train(cfg, task, local_roles(cfg), tmp_path / "whole")

    roles = local_roles(cfg)
    target = roles.discriminator if method == "train" else roles.learner
    _signal_on_call(target, method, call)
    with pytest.raises(Interrupted):
        train(cfg, task, roles, tmp_path / "split")
    assert not (tmp_path / "split" / "summary.json").exists()
    train(cfg, task, local_roles(cfg), tmp_path / "split", resume=True)

    assert stable_metrics(tmp_path / "split" / "metrics.jsonl") == stable_metrics(tmp_path / "whole" / "metrics.jsonl")
    assert (tmp_path / "split" / "samples.txt").read_text() == (tmp_path / "whole" / "samples.txt").read_text()


def test_checkpoints_by_wall_time_as_well_as_by_step(tmp_path):
    task = load_task(faults_config().data)
    names, metrics = {}, {}
    for every_s in (0, 1e-6):  # never by time; after every step
        cfg = faults_config(train={"checkpoint_every": 100, "checkpoint_every_s": every_s, "keep_checkpoints": 20})
        train(cfg, task, local_roles(cfg), tmp_path / str(every_s))
        names[every_s] = sorted(p.name for p in (tmp_path / str(every_s) / "checkpoints").glob("*.pt"))
        metrics[every_s] = stable_metrics(tmp_path / str(every_s) / "metrics.jsonl")
    assert names[0] == ["adversarial_000003.pt", "pretrain_d_000002.pt", "pretrain_g_000003.pt"]
    assert names[1e-6] == [f"adversarial_00000{i}.pt" for i in (1, 2, 3)] + \
        [f"pretrain_d_00000{i}.pt" for i in (1, 2)] + [f"pretrain_g_00000{i}.pt" for i in (1, 2, 3)]
    assert metrics[0] == metrics[1e-6]  # checkpointing draws no random numbers


def test_restarts_and_wall_time_add_up_over_every_attempt_from_events(tmp_path):
    """summary.json's totals count the whole run from events.jsonl, every attempt's; a run
    from before events.jsonl resumes from its checkpoint's totals (a checkpoint written
    before rollout_restarts was kept reads as 0)."""
    cfg = faults_config()
    task = load_task(cfg.data)
    for case in ("events", "checkpoint", "old"):
        run = tmp_path / case
        roles = local_roles(cfg)
        pg_step, calls = roles.learner.pg_step, [0]

        def restarted_then_stopped(*args, **kwargs):  # as if the pool had found restarts
            calls[0] += 1
            roles.pool.restarts += 1
            roles.pool.on_restart(0, 1)
            if calls[0] == 3:  # the third after the checkpoint at iteration 2
                os.kill(os.getpid(), signal.SIGINT)
            return pg_step(*args, **kwargs)

        roles.learner.pg_step = restarted_then_stopped
        with pytest.raises(Interrupted):
            train(cfg, task, roles, run)
        if case != "events":  # a run from before events.jsonl
            (run / "events.jsonl").unlink()
            path = latest_checkpoint(run / "checkpoints")
            state = torch.load(path, weights_only=True)
            state["elapsed_s"] = 1000.0
            if case == "old":
                del state["rollout_restarts"]
            torch.save(state, path)
        result = train(cfg, task, local_roles(cfg), run, resume=True)
        s = result.summary
        assert s["rollout_restarts"] == s["restarts"]["rollout"] == {"events": 3, "checkpoint": 3, "old": 0}[case]
        assert s["restarts"]["learner"] == s["restarts"]["discriminator"] == s["recoveries"] == 0
        assert (s["resumes"], s["attempts"]) == (1, 2 if case == "events" else 1)
        assert (s["wall_time_s"] > 1000) == (case != "events")


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
    adv = [r["step"] for r in stable_metrics(run / "metrics.jsonl") if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    assert adv == [1, 2]


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
    adv = [r["step"] for r in stable_metrics(metrics) if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    assert adv == list(range(1, 31))


EMBEDDED_DRIVER = """
import sys, time
import ray
from seqgan_ray.distributed.cluster import connect, load_cluster
connect(load_cluster("clusters/local.yaml"), [])
print(ray._private.worker._global_node.get_session_dir_path(), flush=True)
if sys.argv[1] == "wait":
    time.sleep(600)
"""


def _left_by(session: str) -> list[str]:
    """The titles of the processes with files open in Ray's session folder `session`."""
    import ray  # noqa: F401 (psutil: the copy Ray ships)
    import psutil

    titles = []
    for proc in psutil.process_iter():
        try:
            if any(f.path.startswith(session + os.sep) for f in proc.open_files()):
                titles.append(proc.cmdline()[0])
        except (psutil.Error, IndexError):
            continue
    return titles


def test_the_next_embedded_start_reaps_the_agents_a_killed_driver_left(tmp_path):
    """A driver SIGKILLed takes its raylet along but leaves Ray's agents (they linger a minute
    or more, reporting to the dead GCS); the next embedded start reaps them, and them only."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    first = subprocess.Popen([sys.executable, "-c", EMBEDDED_DRIVER, "wait"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    session = first.stdout.readline().strip()
    first.kill()
    first.wait()
    deadline = time.time() + 20
    while time.time() < deadline and set(_left_by(session)) - {"ray::DashboardAgent", "ray::RuntimeEnvAgent"}:
        time.sleep(0.2)  # the raylet and the idle workers leave with the driver; the agents stay
    left = _left_by(session)
    assert {"ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= set(left), left
    second = subprocess.run([sys.executable, "-c", EMBEDDED_DRIVER, "exit"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-2000:]
    assert re.search(r"reaped \d+ process\(es\) left by an embedded Ray whose driver was killed: "
                     r"ray::DashboardAgent, ray::RuntimeEnvAgent", second.stderr), second.stderr[-2000:]
    deadline = time.time() + 5
    while time.time() < deadline and _left_by(session):
        time.sleep(0.2)
    assert _left_by(session) == []


KILLED_AT_A_CHECKPOINT = """
import os, signal, sys
import seqgan_ray.trainer as trainer
save = trainer.save_checkpoint
def killed(folder, name, state, **kw):  # SIGKILL of the driver: nothing more is written
    if name == "adversarial_000004":
        os.kill(os.getpid(), signal.SIGKILL)
    return save(folder, name, state, **kw)
trainer.save_checkpoint = killed
from seqgan_ray.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_driver_killed_outright_then_resumed_counts_both_processes(tmp_path):
    """SIGKILL of the driver after iteration 4's records, before its checkpoint; --resume goes
    back to iteration 2's: every iteration is recorded once, and summary.json counts the
    resume, both attempts and the killed process's time (up to its last heartbeat)."""
    from seqgan_ray.events import EventLog

    data = {**LONGER, "train": {**LONGER["train"], "adv_iterations": 6},
            "run": {**LONGER["run"], "out_dir": str(tmp_path / "runs"), "name": "r"}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(data))
    run = tmp_path / "runs" / "r"
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_A_CHECKPOINT, "--config", str(tmp_path / "cfg.yaml"),
                             "--no-ray", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    events = EventLog(run).read()
    span = events[-1]["t"] - next(e["t"] for e in events if e["event"] == "start")
    assert events[-1] == {**events[-1], "event": "step", "phase": "adversarial", "step": 3}
    resumed = subprocess.run([sys.executable, str(ROOT / "run.py"), "--resume", str(run), "--no-ray", "--quiet"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    adv = [r["step"] for r in stable_metrics(run / "metrics.jsonl") if r["phase"] == "adversarial" and "gen/pg_loss" in r]
    assert adv == [1, 2, 3, 4, 5, 6]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["resumes"], summary["attempts"], summary["recoveries"], summary["gave_up"]) == (1, 2, 0, 0)
    assert summary["wall_time_s"] > span
