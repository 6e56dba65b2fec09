"""The benchmark's FLOP counts match hand-computed ones."""

from __future__ import annotations

from seqgan_ray.config import load_config
from seqgan_ray.experiments.flops import Counts, discriminator_forward, generator_row_step, reward_row_steps
from tests.helpers import ROOT


def test_flop_counts_match_hand_computed():
    assert generator_row_step(32, 32, 5000) == 2 * (32 * 128 + 32 * 128 + 32 * 5000)  # 336,384
    # T = 4, filters (1: 3 maps), (2: 5 maps), E = 2: windows 4·1·3 + 3·2·5 = 42 MACs per unit of E
    assert discriminator_forward(4, 2, [1, 2], [3, 5]) == 2 * 2 * 42 + 2 * 8 * 16 + 2 * 8 * 2
    # T = 4, N = 2, B = 3: prefixes of length 1, 2, 3 need 3 + 2 + 1 = 6 steps, times N·B; plus B·T
    assert reward_row_steps(3, 4, 2) == 6 * 2 * 3 + 3 * 4
    counts = Counts(load_config(ROOT / "configs" / "paper_synthetic.yaml"))
    assert abs(counts.d_forward - 27.02e6) < 0.01e6  # the paper's D at T = 20: ~27 MFLOP a sequence
    # 5 d-steps x 3 epochs x (9,984 real + 9,984 fake) sequences: ~24 TFLOP an iteration
    d_train = counts.d_round(3).discriminator * 5
    assert 24.0e12 < d_train < 24.5e12


def test_prefix_shared_scoring_flops_by_hand():
    """T = 3, E = 1, one map of width 1 and one of width 2, B = N = 1: the sequence's own
    windows (6 + 8), then for t = 1 the windows from 1 (k = 1: 2 of them) and from 0 (k = 2:
    2), for t = 2 from 2 (1) and from 1 (1), and the head (highway 2x4, output 2x2) per
    completion."""
    from seqgan_ray.experiments.flops import discriminator_rollout_scoring

    conv = 14 + (2 * 2 * 1 + 2 * 2 * 2) + (2 * 1 * 1 + 2 * 1 * 2)
    head = 2 * (2 * 2 * 4 + 2 * 2 * 2)
    assert discriminator_rollout_scoring(3, 1, [1, 2], [1, 1], 1, 1) == conv + head
    # Never more than scoring every completion whole; a fifth less at the paper's size.
    cfg = load_config(None)
    shared, whole = Counts(cfg).rewards(64), Counts(cfg).rewards(64, shared_prefix=False)
    assert shared.generator == whole.generator and 0.15 < 1 - shared.discriminator / whole.discriminator < 0.25
