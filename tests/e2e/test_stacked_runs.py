"""K seeds trained as one stacked model (stacked_runs.py) write what K separate runs write:
the same metrics (float32, up to rounding), samples and checkpoints; a stop resumes them."""

import json
import os
import signal

import pytest

from seqgan_ray import batched
from seqgan_ray.config import ConfigError
from seqgan_ray.stacked_runs import check_memory, check_stack, memory_estimate, train_stacked
from seqgan_ray.tasks import load_task
from seqgan_ray.trainer import Interrupted, local_roles, train
from tests.helpers import faults_config

SEEDS = (0, 1)


def configs(**train):
    """Two runs of one SeqGAN config that differ in seed and in G's adversarial rate."""
    cfgs = []
    for seed in SEEDS:
        cfg = faults_config(train={"adv_iterations": 4, "d_steps": 2, "eval_every": 2, **train})
        cfg.run.seed = seed
        cfg.generator.adv_lr = 0.01 * (1 + seed)
        cfgs.append(cfg)
    return cfgs


def metrics(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_runs(stacked_dir, separate_dir):
    """metrics.jsonl line by line (wall times aside) and samples.txt of each run."""
    for seed in SEEDS:
        mine, theirs = metrics(stacked_dir / str(seed) / "metrics.jsonl"), metrics(separate_dir / str(seed) / "metrics.jsonl")
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            keys = {k for k in b if not k.startswith("time/")}
            assert keys <= set(a), sorted(keys - set(a))
            for k in keys:
                assert a[k] == (pytest.approx(b[k], rel=1e-4, abs=1e-6) if isinstance(b[k], float) else b[k]), (seed, k)
        assert (stacked_dir / str(seed) / "samples.txt").read_text() == (separate_dir / str(seed) / "samples.txt").read_text()


def separate(cfgs, folder):
    for cfg in cfgs:
        train(cfg, load_task(cfg.data), local_roles(cfg), folder / str(cfg.run.seed))


@pytest.mark.parametrize("num_real, precision", [(-1, "float32"), (64, "float32"), (-1, "bfloat16")],
                         ids=["whole_training_set", "fresh_sample_a_round", "bfloat16_d"])
def test_stacked_seeds_write_what_separate_runs_write(tmp_path, num_real, precision):
    cfgs = configs(num_real=num_real)
    for cfg in cfgs:
        cfg.discriminator.precision = precision
    separate(cfgs, tmp_path / "separate")
    results = train_stacked([(cfg, load_task(cfg.data), tmp_path / "stacked" / str(cfg.run.seed), False, None)
                             for cfg in cfgs])
    assert [r.run_dir.name for r in results] == ["0", "1"]
    assert_same_runs(tmp_path / "stacked", tmp_path / "separate")
    iterations = [m for m in metrics(tmp_path / "stacked" / "0" / "metrics.jsonl") if "gen/pg_loss" in m]
    assert len(iterations) == 4 and all(m["time/stacked_runs"] == 2.0 and "disc/acc_fake" in m for m in iterations)


def test_stacked_runs_stopped_by_a_signal_resume_to_the_same_end(tmp_path, monkeypatch):
    """SIGTERM during the second stacked iteration: both runs checkpoint that iteration and stop;
    one of them then loses its newest checkpoint (it catches up alone before the stack goes on).
    The resumed runs end where uninterrupted separate runs end."""
    cfgs = configs(checkpoint_every=100, keep_checkpoints=10)
    separate(cfgs, tmp_path / "separate")
    calls, iteration = [], batched.StackedSeqGAN.iteration

    def signalled(self, real):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return iteration(self, real)

    monkeypatch.setattr(batched.StackedSeqGAN, "iteration", signalled)
    runs = [(cfg, load_task(cfg.data), tmp_path / "stacked" / str(cfg.run.seed)) for cfg in cfgs]
    with pytest.raises(Interrupted):
        train_stacked([(*run, False, None) for run in runs])
    for seed in SEEDS:
        assert not (tmp_path / "stacked" / str(seed) / "summary.json").exists()
        assert sorted(p.name for p in (tmp_path / "stacked" / str(seed) / "checkpoints").glob("adversarial_*")) == \
            ["adversarial_000002.pt"]
    (tmp_path / "stacked" / "1" / "checkpoints" / "adversarial_000002.pt").unlink()  # run 1 back to its pretraining
    monkeypatch.setattr(batched.StackedSeqGAN, "iteration", iteration)
    train_stacked([(cfg, load_task(cfg.data), run_dir, True, None) for cfg, _, run_dir in runs])
    assert_same_runs(tmp_path / "stacked", tmp_path / "separate")


def test_runs_that_cannot_stack_are_refused_by_key(tiny_cfg):
    other = faults_config()
    other.generator.hidden_dim = 16
    with pytest.raises(ConfigError, match=r"generator\.hidden_dim is 8 in one run and 16"):
        check_stack([tiny_cfg, other])
    tiny_cfg.train.method = "gsgan"
    with pytest.raises(ConfigError, match=r"train\.method=gsgan: only SeqGAN's"):
        check_stack([tiny_cfg, tiny_cfg])
    tiny_cfg.train.method, tiny_cfg.rollout.reward = "seqgan", "constant"
    with pytest.raises(ConfigError, match=r"rollout\.reward=constant"):
        check_stack([tiny_cfg])


def test_more_stacked_runs_than_memory_holds_are_refused_with_how_many_fit(tiny_cfg):
    fixed = memory_estimate(tiny_cfg, 0)
    one = memory_estimate(tiny_cfg, 1) - fixed   # a run's share
    assert memory_estimate(tiny_cfg, 4) == fixed + 4 * one
    check_memory(tiny_cfg, 4, free=int((fixed + 4 * one) / 0.8) + 1)
    with pytest.raises(ConfigError, match=r"4 stacked runs need about .* GiB .* stack at most 2 "):
        check_memory(tiny_cfg, 4, free=int((fixed + 2.5 * one) / 0.8))
    tiny_cfg.data.seq_len = 2000  # Eq. 4's completions of every prefix grow with T²
    assert memory_estimate(tiny_cfg, 1) - fixed > 1000 * one


def test_reproduce_stack_seeds_trains_seqgan_stacked_and_mle_apart_with_the_same_results(tmp_path, capsys):
    """`reproduce --stack-seeds` over two seeds: both seeds' pretraining, then SeqGAN's two seeds
    as one stacked model, MLE apart (it cannot stack, and says why); SeqGAN's runs end where
    the unstacked command's end. Without --no-ray it is refused before any work."""
    from seqgan_ray.cli import main
    from tests.helpers import reproduce_file

    runs = {"seqgan": {}, "mle": {"train.method": "mle"}}
    for how in ("stacked", "apart"):
        (tmp_path / how).mkdir()
    paths = {how: reproduce_file(tmp_path / how, runs, seeds=[0, 1]) for how in ("stacked", "apart")}
    assert main(["reproduce", "--config", str(paths["stacked"]), "--stack-seeds"]) == 2
    assert "--stack-seeds trains every role of the stacked runs in one process: add --no-ray" in capsys.readouterr().err
    assert main(["reproduce", "--config", str(paths["stacked"]), "--no-ray", "--stack-seeds", "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "seed 0: seqgan: starting" in err and "(stacked)" in err
    assert "seed 1: mle (not stacked: train.method=mle: only SeqGAN's adversarial phase stacks)" in err
    assert err.index("seed 1: pretraining") < err.index("seed 0: seqgan")
    assert main(["reproduce", "--config", str(paths["apart"]), "--no-ray", "--no-report"]) == 0
    for seed in SEEDS:
        stacked, apart = (tmp_path / how / "runs" / f"seed{seed}" / "seqgan" for how in ("stacked", "apart"))
        assert any("time/stacked_runs" in m for m in metrics(stacked / "metrics.jsonl"))
        mine, theirs = (json.loads((d / "summary.json").read_text()) for d in (stacked, apart))
        assert mine["oracle_nll_after_adversarial"] == pytest.approx(theirs["oracle_nll_after_adversarial"], rel=1e-5)
        assert (stacked / "samples.txt").read_text() == (apart / "samples.txt").read_text()
    assert main(["reproduce", "--config", str(paths["stacked"]), "--no-ray", "--stack-seeds", "--no-report"]) == 0
    assert "seed 1: seqgan: done" in capsys.readouterr().err


def test_side_by_side_a_stacked_run_is_one_job_for_all_its_seeds(tmp_path, capsys):
    """`--jobs 2 --stack-seeds`: SeqGAN's two seeds are one job, started once both seeds'
    pretraining has finished, with its own log; MLE's seeds are a job each."""
    from seqgan_ray.cli import main
    from tests.helpers import reproduce_file

    path = reproduce_file(tmp_path, {"seqgan": {}, "mle": {"train.method": "mle"}}, seeds=[0, 1])
    assert main(["reproduce", "--config", str(path), "--no-ray", "--jobs", "2", "--stack-seeds", "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "seed 0: mle started" in err and "seed 1: mle started" in err and "seeds 0,1: seqgan started" in err, err
    assert err.index("seed 1: pretraining finished") < err.index("seeds 0,1: seqgan started")
    log = (tmp_path / "runs" / "seqgan.stacked.log").read_text()
    assert "seed 1: seqgan: starting" in log and "(stacked)" in log
    for seed in SEEDS:
        for name in ("seqgan", "mle"):
            assert (tmp_path / "runs" / f"seed{seed}" / name / "summary.json").is_file()
