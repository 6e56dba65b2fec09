"""The benchmark runs and reports finite figures (never timing thresholds)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from tests.helpers import ROOT


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
    sections = ("rewards", "flops", "scaling", "stride")
    # One thread, and OpenMP threads that sleep instead of spinning: on a CPU shared with
    # other jobs (CI, a test run beside it) spinning threads made this 5-10x slower.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-m", "seqgan_ray.experiments.bench", "--quick", "--sections", ",".join(sections),
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


def _quick_section(tmp_path, section: str) -> dict:
    """`bench --quick --sections SECTION` on one thread: its table printed, its JSON figures."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-m", "seqgan_ray.experiments.bench", "--quick", "--sections", section,
                           "--threads", "1", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"== {section}:" in proc.stdout
    return json.loads(out.read_text())[section]


def test_quick_leakgan_bench_times_an_iteration_in_process_and_on_two_actors(tmp_path):
    data = _quick_section(tmp_path, "leakgan")
    for where in ("in_process", "two_actors"):
        assert set(data[where]) == {"sample", "rewards", "g_update", "negatives", "d_training", "iteration"}
        assert data[where]["iteration"] == sum(v for k, v in data[where].items() if k != "iteration")
    numbers = list(_numbers(data))
    assert numbers and all(math.isfinite(x) and x > 0 for x in numbers)


def test_quick_maskgan_bench_times_in_fills_in_process_and_on_two_actors(tmp_path):
    data = _quick_section(tmp_path, "maskgan")
    assert set(data["parts_s"]) == {"d_steps", "g_step", "broadcast"}
    assert set(data["infill_s"]) == {"16", "256"}
    numbers = list(_numbers(data))
    assert numbers and all(math.isfinite(x) and x > 0 for x in numbers)


def test_quick_relgan_bench_times_the_d_step_both_ways(tmp_path):
    data = _quick_section(tmp_path, "relgan")
    assert set(data) == {"20"}
    from seqgan_ray.models.discriminator import bf16_supported

    assert set(data["20"]) == {"kept", "blocked", "highway_gflop"} | ({"blocked_bf16"} if bf16_supported() else set())
    numbers = list(_numbers(data))
    assert numbers and all(math.isfinite(x) and x > 0 for x in numbers)


def test_quick_batched_bench_times_stacked_seeds_against_separate_runs(tmp_path):
    data = _quick_section(tmp_path, "batched")
    assert data["K"] == 3 and data["device"] in ("cpu", "cuda")
    for step in ("MLE step", "Eq. 8 step", "D step", "iteration (G step, a D round)"):
        assert set(data[step]) == {"one run", "separate", "stacked"}
    numbers = list(_numbers(data))
    assert numbers and all(math.isfinite(x) and x > 0 for x in numbers)
