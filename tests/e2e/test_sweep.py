"""A real tiny Ray Tune sweep with ASHA, interrupted and resumed."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqgan_ray.config import load_config
from tests.conftest import TINY
from tests.helpers import ROOT, run_py, write_sweep_file


def test_tiny_asha_sweep_runs_writes_table_and_best_config_and_resumes(tmp_path):
    base = {**TINY, "train": {**TINY["train"], "adv_iterations": 3, "checkpoint_every": 1}}
    sweep_file = write_sweep_file(tmp_path, {
        "name": "tiny", "out_dir": str(tmp_path / "tune"), "num_samples": 3, "grace_period": 1,
        "driver_cpus": 0.2,
        "search_space": {"rollout.num_rollouts": {"choice": [2, 4]}, "generator.adv_lr": {"loguniform": [1e-3, 1e-2]}}},
        base)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "tune", "--config", str(sweep_file)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    sweep_dir = tmp_path / "tune" / "tiny"
    assert (tmp_path / "tune" / "tiny-pretrained" / "summary.json").is_file()  # pretrained once
    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    assert len(rows) == 3 and all(r["status"] == "TERMINATED" for r in rows)
    assert all(float(r["eval/oracle_nll"]) > 0 for r in rows)
    assert all(float(r["eval/nll_test"]) > 0 for r in rows)  # the other metrics beside the searched one
    assert 1 <= max(int(r["iterations"]) for r in rows) <= 3
    for r in rows:  # a trial's state lives in Tune's checkpoints alone; a finished run keeps its generator
        run = Path(r["trial_dir"]) / "run"
        assert not any((run / "checkpoints").glob("*.pt")) and list(Path(r["trial_dir"]).glob("checkpoint_*"))
        assert (run / "generator.pt").is_file() == (int(r["iterations"]) == 3)
    nll = [float(r["eval/oracle_nll"]) for r in rows]
    assert nll == sorted(nll)  # best first
    best = load_config(sweep_dir / "best_config.yaml")
    assert best.rollout.num_rollouts == int(rows[0]["rollout.num_rollouts"])
    assert best.generator.adv_lr == pytest.approx(float(rows[0]["generator.adv_lr"]))
    assert "best eval/oracle_nll" in proc.stdout
    # the best config runs as is
    run = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(sweep_dir / "best_config.yaml"),
                          "--no-ray", f"run.out_dir={tmp_path / 'runs'}", "run.name=best"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    # resuming a finished sweep re-reads its state and writes the same table
    again = subprocess.run([sys.executable, str(ROOT / "run.py"), "tune", "--resume", str(sweep_dir)], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    assert list(csv.DictReader(open(sweep_dir / "results.csv"))) == rows


def test_an_interrupted_sweep_resumes_and_finishes_its_trials(tmp_path):
    import signal
    import time

    base = {**TINY, "train": {**TINY["train"], "adv_iterations": 40, "checkpoint_every": 10}}
    sweep_file = write_sweep_file(tmp_path, {
        "name": "cut", "out_dir": str(tmp_path / "tune"), "num_samples": 3, "scheduler": "fifo",
        "driver_cpus": 0.2, "search_space": {"generator.adv_lr": {"loguniform": [1e-3, 1e-2]}}}, base)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = tmp_path / "out.txt"
    with open(out, "w") as f:  # trials run one at a time: each reserves 1.7 of the 2 CPUs
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "tune", "--config", str(sweep_file)],
                                cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
        deadline = time.time() + 400
        while time.time() < deadline and "TERMINATED" not in out.read_text():
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=200)
    text = out.read_text()
    assert proc.returncode == 130, text[-3000:]
    assert "continue the sweep with: python run.py tune --resume" in text
    sweep_dir = tmp_path / "tune" / "cut"
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "tune", "--resume", str(sweep_dir)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    assert len(rows) == 3 and all(r["iterations"] == "40" and r["status"] == "TERMINATED" for r in rows)


def test_an_optuna_sweep_runs_its_trials_through_the_searcher(tmp_path):
    base = {**TINY, "train": {**TINY["train"], "adv_iterations": 2}}
    sweep_file = write_sweep_file(tmp_path, {
        "name": "tpe", "out_dir": str(tmp_path / "tune"), "num_samples": 2, "scheduler": "fifo",
        "search_alg": "optuna", "driver_cpus": 0.2,
        "search_space": {"generator.adv_lr": {"loguniform": [1e-3, 1e-2]}, "rollout.num_rollouts": {"choice": [2, 4]}}},
        base)
    proc = run_py("tune", "--config", str(sweep_file), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    sweep_dir = tmp_path / "tune" / "tpe"
    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    assert len(rows) == 2 and all(r["status"] == "TERMINATED" for r in rows)
    assert all(1e-3 <= float(r["generator.adv_lr"]) <= 1e-2 for r in rows)
    assert list(sweep_dir.glob("searcher-state-*.pkl"))  # Tune saved the Optuna searcher's state
    assert "Resume experiment with" not in proc.stderr


def test_a_stacked_sweep_trains_its_members_as_one_model_each_as_it_would_train_apart(tmp_path):
    """tune.stack 2: one trial, two learning rates, one stacked model; each member's run folder
    and row hold what the same config trained apart from the shared pretraining writes."""
    import json

    from seqgan_ray.checkpoint import latest_checkpoint
    from seqgan_ray.distributed.recovery import run_training
    from seqgan_ray.tasks.text import load_task

    base = {**TINY, "train": {**TINY["train"], "adv_iterations": 3, "checkpoint_every": 2}}
    sweep_file = write_sweep_file(tmp_path, {
        "name": "stk", "out_dir": str(tmp_path / "tune"), "num_samples": 2, "stack": 2, "scheduler": "fifo",
        "driver_cpus": 0.2, "search_space": {"generator.adv_lr": {"loguniform": [1e-3, 1e-1]}}}, base)
    proc = run_py("tune", "--config", str(sweep_file), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    sweep_dir = tmp_path / "tune" / "stk"
    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    assert sorted(r["member"] for r in rows) == ["0", "1"] and len({r["trial_dir"] for r in rows}) == 1
    assert all(r["status"] == "TERMINATED" and r["iterations"] == "3" for r in rows)
    assert rows[0]["generator.adv_lr"] != rows[1]["generator.adv_lr"]  # each member its own draw
    assert float(rows[0]["eval/oracle_nll"]) <= float(rows[1]["eval/oracle_nll"])  # best first
    assert load_config(sweep_dir / "best_config.yaml").generator.adv_lr == pytest.approx(float(rows[0]["generator.adv_lr"]))

    def lines(run):
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]

    pretrained = latest_checkpoint(tmp_path / "tune" / "stk-pretrained" / "checkpoints")
    for row in rows:
        run = Path(row["trial_dir"]) / f"run{row['member']}"
        stacked = lines(run)
        assert stacked[-1]["eval/oracle_nll"] == pytest.approx(float(row["eval/oracle_nll"]), rel=1e-6)
        assert all(m["time/stacked_runs"] == 2.0 for m in stacked if "gen/pg_loss" in m)
        cfg = load_config(run / "config.yaml")
        assert cfg.generator.adv_lr == pytest.approx(float(row["generator.adv_lr"]))
        apart = tmp_path / f"apart{row['member']}"
        run_training(cfg, load_task(cfg.data, apart), apart, None, start_from=pretrained)
        alone = lines(apart)
        assert len(alone) == len(stacked)
        for a, b in zip(stacked, alone):
            for k in (k for k in b if not k.startswith("time/") and k != "pool/restarts"):
                assert a[k] == (pytest.approx(b[k], rel=1e-4, abs=1e-6) if isinstance(b[k], float) else b[k]), k
