"""The slow model checks: the paper's oracle scores its data as the paper says; bfloat16 D
agrees with float32."""

import pytest
import torch

from seqgan_ray.config import DataConfig
from seqgan_ray.models.discriminator import Discriminator
from seqgan_ray.tasks.synthetic import load_task
from tests.helpers import ROOT

ORACLE_DIR = ROOT.parent / "shared" / "data" / "oracle"


def test_paper_oracle_scores_real_data_as_in_the_paper():
    if not (ORACLE_DIR / "target_params.pkl").is_file():
        pytest.skip(f"{ORACLE_DIR}/target_params.pkl not present")
    task = load_task(DataConfig(oracle_dir=str(ORACLE_DIR)))
    assert task.real.shape == (9984, 20)
    assert "paper oracle" in task.source
    assert abs(task.oracle.nll(task.real, batch=16) - 5.7609) <= 5e-4


def test_bfloat16_discriminator_is_close_to_float32():
    """bfloat16 runs the matmuls at 8 bits of mantissa, with float32 weights and outputs."""
    d32 = Discriminator(50, 20, emb_dim=16, seed=0)
    d16 = Discriminator(50, 20, emb_dim=16, precision="bfloat16", seed=0)
    d16.load_state_dict(d32.state_dict())
    tokens = torch.randint(0, 50, (200, 20), generator=torch.Generator().manual_seed(5))
    p32, p16 = d32.prob_real(tokens), d16.prob_real(tokens)
    assert p16.dtype == torch.float32
    assert (p32 - p16).abs().max() < 0.01
    loss32, loss16 = (d(tokens).logsumexp(-1).mean() for d in (d32.eval(), d16.eval()))
    loss32.backward()
    loss16.backward()
    for a, b in zip(d32.parameters(), d16.parameters()):  # a few maxima move to another window
        assert b.grad.dtype == torch.float32
        assert (a.grad - b.grad).norm() <= 0.1 * a.grad.norm()
    g32, g16 = (torch.cat([p.grad.flatten() for p in d.parameters()]) for d in (d32, d16))
    assert (g32 - g16).norm() <= 0.02 * g32.norm()
