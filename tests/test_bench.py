"""The benchmark runs and reports finite figures (never timing thresholds), and its FLOP
counts match hand-computed ones."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from seqgan_ray.config import load_config
from seqgan_ray.flops import Counts, discriminator_forward, generator_row_step, reward_row_steps

ROOT = Path(__file__).resolve().parent.parent


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def test_quick_bench_prints_each_section_and_finite_positive_figures(tmp_path):
    out = tmp_path / "bench.json"
    sections = ("rewards", "flops", "scaling")
    # One thread, and OpenMP threads that sleep instead of spinning: on a CPU shared with
    # other jobs (CI, a test run beside it) spinning threads made this 5-10x slower.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-m", "seqgan_ray.bench", "--quick", "--sections", ",".join(sections),
                           "--threads", "1", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch" in proc.stdout.splitlines()[0] and "bf16_native" in proc.stdout.splitlines()[0]
    for name in sections:
        assert f"== {name}:" in proc.stdout, f"no {name} table in:\n{proc.stdout}"
    assert "scaled x2" in proc.stdout  # the quick reference runs N=1 of N=2 and says so
    data = json.loads(out.read_text())
    assert set(data) == {"header", *sections}
    for name in sections:
        numbers = list(_numbers(data[name]))
        assert numbers, name
        bad = [x for x in numbers if not (math.isfinite(x) and x > 0)]
        assert not bad, (name, bad)
    assert set(data["flops"]["peak_gflops"]) == {"float32", "bfloat16"}


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
    from seqgan_ray.flops import discriminator_rollout_scoring

    conv = 14 + (2 * 2 * 1 + 2 * 2 * 2) + (2 * 1 * 1 + 2 * 1 * 2)
    head = 2 * (2 * 2 * 4 + 2 * 2 * 2)
    assert discriminator_rollout_scoring(3, 1, [1, 2], [1, 1], 1, 1) == conv + head
    # Never more than scoring every completion whole; a fifth less at the paper's size.
    cfg = load_config(None)
    shared, whole = Counts(cfg).rewards(64), Counts(cfg).rewards(64, shared_prefix=False)
    assert shared.generator == whole.generator and 0.15 < 1 - shared.discriminator / whole.discriminator < 0.25
