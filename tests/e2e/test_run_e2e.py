"""`python run.py` in a subprocess: the run folder it leaves, and the errors it gives."""

from __future__ import annotations

import json

import torch
import yaml

from tests.conftest import TINY
from tests.helpers import run_py, tiny_config


def test_run_py_on_embedded_ray_leaves_a_complete_run_folder(tmp_path):
    proc = run_py("--config", str(tiny_config(tmp_path)), "run.name=e2e", "run.progress=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "seeded N(0, 1) oracle" in proc.stderr  # no paper oracle at the configured path
    assert "[adversarial] 2/2" in proc.stderr      # progress lines
    run = tmp_path / "runs" / "e2e"
    for name in ("config.yaml", "metrics.jsonl", "oracle_nll.png", "samples.txt", "summary.json",
                 "data_source.txt", "generator.pt"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    # a checkpoint every iteration and at each phase's end: the newest one kept (the default),
    # and the last of each earlier phase (the pretrained G and D, which other runs start from)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "adversarial_000002.pt", "pretrain_d_000001.pt", "pretrain_g_000002.pt"]
    assert yaml.safe_load((run / "config.yaml").read_text())["rollout"]["num_rollouts"] == 4
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    phases = {r["phase"] for r in records}
    assert phases == {"pretrain_g", "pretrain_d", "adversarial"}
    evals = [r for r in records if "eval/oracle_nll" in r]
    assert [r["epoch"] for r in evals] == [0, 1, 2, 3, 4]
    assert all(r["eval/oracle_nll"] > 0 for r in evals)
    samples = (run / "samples.txt").read_text().splitlines()
    assert len(samples) == 10 and all(len(line.split()) == TINY["data"]["seq_len"] for line in samples)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["rollout_workers"] == 2 and summary["oracle_nll_after_adversarial"] > 0
    assert summary["devices"] == {"learner": "cpu", "discriminator": "cpu", "rollout": ["cpu", "cpu"]}
    assert "devices: learner cpu, discriminator cpu, rollout actors cpu x 2" in proc.stderr
    assert set(torch.load(run / "generator.pt", weights_only=True)) >= {"W", "b"}


def test_unknown_key_and_bad_value_are_rejected_with_the_key_named(tmp_path):
    out = f"run.out_dir={tmp_path / 'runs'}"
    proc = run_py("rollout.num_rolouts=8", out, "--no-ray")
    assert proc.returncode == 2
    assert "did you mean 'rollout.num_rollouts'" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_py("generator.lr=-1", out, "--no-ray")
    assert proc.returncode == 2 and "'generator.lr'" in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing written for a config that cannot run


def test_gpu_cluster_outside_the_cluster_prints_the_commands_and_fails(tmp_path):
    proc = run_py("--cluster", "clusters/gpu.yaml", "--config", str(tiny_config(tmp_path)))
    assert proc.returncode == 2, proc.stderr[-2000:]
    for cmd in ("ray up clusters/gpu.yaml", "ray job submit", "ray down clusters/gpu.yaml"):
        assert cmd in proc.stderr
    assert not (tmp_path / "runs").exists()  # no silent local run


def test_help_lists_the_config_keys():
    proc = run_py("--help")
    assert proc.returncode == 0 and "rollout.update_rate" in proc.stdout
