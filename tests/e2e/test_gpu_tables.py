"""clusters/gpu_tables.sh, the one command for the paper-scale tables on a GPU machine: its
reproduce commands side by side on their share of the cores, under one deadline, then the
reports. Here on the CPU, with tiny reproduce files."""

import os
import subprocess
import sys

from seqgan_ray.experiments.reproduce import load_plan
from tests.helpers import ROOT, reproduce_file

SCRIPT = ROOT / "clusters" / "gpu_tables.sh"


def _script(*args, **env):
    return subprocess.run(["bash", str(SCRIPT), *args], env={**os.environ, "PYTHON": sys.executable, **env},
                          capture_output=True, text=True, timeout=600)


def test_the_default_files_load_with_the_scripts_overrides_and_share_the_cores(tmp_path):
    proc = _script("540", DRY_RUN="1", LOG=str(tmp_path / "log"), ORACLE_DIR=str(tmp_path / "oracle"))
    assert proc.returncode == 0, proc.stderr
    training = [line.split() for line in proc.stdout.splitlines() if " --no-report " in line]
    assert len(training) == 3
    cores = [cmd[cmd.index("-c") + 1] for cmd in training]
    n = os.cpu_count()
    if n >= 3:   # a share each, together every core once
        spans = [range(int(a), int(b) + 1) for a, b in (c.split("-") for c in cores)]
        assert sorted(i for s in spans for i in s) == list(range(n))
    for cmd in training:
        config = cmd[cmd.index("--config") + 1]
        overrides = cmd[cmd.index("--no-report") + 1:]
        assert "reproduce.seeds=[0,1,2]" in overrides and "train.checkpoint_every_s=60" in overrides
        assert f"data.oracle_dir={tmp_path / 'oracle'}" in overrides   # a GPU machine has no ../shared
        plan = load_plan(ROOT / config, overrides)   # every key the script sets is one the file takes
        assert plan.rep.seeds == [0, 1, 2]
        assert all(cfg.train.checkpoint_every_s == 60 and cfg.data.oracle_dir == str(tmp_path / "oracle")
                   for cfg in plan.run_configs.values())
        assert "--stack-seeds" not in cmd
    proc = _script("540", DRY_RUN="1", STACK="1", LOG=str(tmp_path / "log"))   # each SeqGAN run's seeds one model
    stacked = [line.split() for line in proc.stdout.splitlines() if " --no-report " in line]
    assert len(stacked) == 3 and all("--stack-seeds" in cmd and "--no-ray" in cmd for cmd in stacked)


def test_two_reproduce_files_train_side_by_side_and_their_reports_are_written(tmp_path):
    files = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        files.append(reproduce_file(tmp_path / name, {"mle": {"train.method": "mle"}}, seeds=[0]))
    proc = _script("300", FILES=" ".join(map(str, files)), SEEDS="0", JOBS="1", LOG=str(tmp_path / "log"))
    assert proc.returncode == 0, (tmp_path / "log").read_text()[-3000:]
    assert "every run finished" in proc.stdout
    for name in ("a", "b"):
        assert (tmp_path / name / "runs" / "seed0" / "mle" / "summary.json").is_file()
        assert (tmp_path / name / "doc" / "synthetic.md").read_text().startswith("#")


def test_bad_input_is_refused_before_any_work(tmp_path):
    proc = _script("ten", LOG=str(tmp_path / "log"))
    assert proc.returncode == 2 and "SECONDS must be a whole number" in proc.stderr
    proc = _script("60", FILES="configs/no_such.yaml", LOG=str(tmp_path / "log"))
    assert proc.returncode == 2 and "no reproduce file" in proc.stderr and "no_such.yaml" in proc.stderr


def test_the_gpu_check_says_so_on_a_machine_without_a_gpu(tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: clusters/gpu_check.sh would run its checks")
    proc = subprocess.run(["bash", str(ROOT / "clusters" / "gpu_check.sh"), "60"],
                          env={**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out")},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "torch sees no CUDA GPU here" in proc.stdout
    assert "torch sees no CUDA GPU here" in (tmp_path / "out" / "gpu_check.log").read_text()
