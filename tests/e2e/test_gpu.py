"""A GPU cluster file on a machine without a GPU is refused by name, before any work."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import ROOT, run_py, tiny_config


def test_a_gpu_cluster_file_on_a_machine_without_a_gpu_is_refused_by_name(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_py("--cluster", str(ROOT / "clusters" / "workstation.yaml"), "--config",
                  str(tiny_config(tmp_path)), "run.name=nogpu")
    assert proc.returncode != 0
    assert "workstation.yaml: metadata.seqgan.rollout_worker.num_gpus is 0.2" in proc.stderr
    assert "has no GPU" in proc.stderr and "clusters/local.yaml" in proc.stderr
    assert not (tmp_path / "runs" / "nogpu" / "checkpoints").exists()
