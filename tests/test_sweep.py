"""Ray Tune sweeps: the search-space file, its errors, and a real tiny sweep with ASHA."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seqgan_ray.config import ConfigError, load_config
from seqgan_ray.sweep import load_sweep, searches_pretraining
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parent.parent


def _sweep_file(tmp_path: Path, tune: dict, base: dict | None = None) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**(base or TINY), "tune": tune}))
    return path


def test_the_shipped_sweep_file_parses():
    base, sweep = load_sweep(ROOT / "configs" / "tune_oracle.yaml")
    assert sweep.metric == "eval/oracle_nll" and sweep.scheduler == "asha"
    assert set(sweep.search_space) == {"rollout.num_rollouts", "generator.adv_lr", "rollout.update_rate"}
    assert not searches_pretraining(sweep) and base.train.adv_iterations == 12
    assert Path(base.data.oracle_dir).is_absolute()  # trials run in their own folders


@pytest.mark.parametrize("space,message", [
    ({"rollout.num_rolouts": {"choice": [4, 8]}}, "did you mean 'rollout.num_rollouts'"),
    ({"rollout.num_rollouts": {"choice": []}}, "non-empty list"),
    ({"generator.adv_lr": {"loguniform": [1e-2, 1e-4]}}, "low 0.01 > high 0.0001"),
    ({"generator.adv_lr": {"normal": [0, 1]}}, "kind in choice, grid"),
    ({"rollout.num_rollouts": {"choice": [4, 0]}}, "'rollout.num_rollouts' must be > 0"),
    ({"rollout.update_rate": {"uniform": [0.0, 1.5]}}, "rollout.update_rate"),
])
def test_bad_search_spaces_fail_before_any_trial(tmp_path, space, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_sweep(_sweep_file(tmp_path, {"search_space": space}))


def test_a_metric_that_is_never_reported_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="never reported"):
        load_sweep(_sweep_file(tmp_path, {"metric": "eval/bleu_9", "search_space": {"rollout.num_rollouts": {"choice": [2]}}}))


@pytest.mark.e2e
def test_tiny_asha_sweep_runs_writes_table_and_best_config_and_resumes(tmp_path):
    base = {**TINY, "train": {**TINY["train"], "adv_iterations": 3, "checkpoint_every": 1}}
    sweep_file = _sweep_file(tmp_path, {
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
    assert 1 <= max(int(r["iterations"]) for r in rows) <= 3
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


@pytest.mark.e2e
def test_an_interrupted_sweep_resumes_and_finishes_its_trials(tmp_path):
    import signal
    import time

    base = {**TINY, "train": {**TINY["train"], "adv_iterations": 40, "checkpoint_every": 10}}
    sweep_file = _sweep_file(tmp_path, {
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


def test_an_unknown_tune_key_is_named_with_the_closest_one(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'tune.metric'"):
        load_sweep(_sweep_file(tmp_path, {"metrik": "eval/oracle_nll",
                                          "search_space": {"rollout.num_rollouts": {"choice": [2]}}}))
