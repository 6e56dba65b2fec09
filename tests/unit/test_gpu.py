"""The GPU path: the models on CUDA compute what they compute on the CPU, every role of a run
on clusters/workstation.yaml lands on the GPU, and a checkpoint crosses between a GPU and a
CPU. Skipped where torch sees no GPU (CI); run on a GPU machine with `python -m pytest
tests/unit/test_gpu.py`."""

from __future__ import annotations

import copy
import json
import os

import pytest
import torch

from seqgan_ray.roles import DiscriminatorTrainer, GeneratorLearner, make_discriminator, make_generator
from tests.helpers import ROOT, run_py, tiny_config

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU visible to torch")


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@cuda
def test_policy_and_discriminator_on_cuda_match_the_cpu(tiny_cfg):
    torch.manual_seed(0)
    g_cpu = make_generator(tiny_cfg, seed=3)
    g_gpu = make_generator(tiny_cfg, seed=3).cuda()
    seqs = g_cpu.sample(256, generator=torch.Generator().manual_seed(1))
    assert rel_err(g_gpu.log_probs(seqs.cuda()).cpu(), g_cpu.log_probs(seqs)) < 1e-4
    d_cpu = make_discriminator(tiny_cfg, seed=4).eval()
    d_gpu = make_discriminator(tiny_cfg, seed=4).eval().cuda()
    assert rel_err(d_gpu.prob_real(seqs.cuda()).cpu(), d_cpu.prob_real(seqs)) < 1e-3
    # sampling on the GPU draws valid tokens from the GPU's own stream
    drawn = g_gpu.sample(512, generator=torch.Generator("cuda").manual_seed(2))
    assert drawn.is_cuda and drawn.shape == (512, tiny_cfg.data.seq_len)
    assert 0 <= drawn.min().item() and drawn.max().item() < tiny_cfg.data.vocab_size


@cuda
def test_a_run_on_the_workstation_cluster_puts_every_role_on_the_gpu(tmp_path):
    proc = run_py("--cluster", str(ROOT / "clusters" / "workstation.yaml"), "--config",
                  str(tiny_config(tmp_path)), "run.name=gpu", "run.progress=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "runs" / "gpu" / "summary.json").read_text())
    devices = summary["devices"]
    assert devices["learner"].startswith("cuda") and devices["discriminator"].startswith("cuda")
    assert len(devices["rollout"]) == summary["rollout_workers"] >= 1
    assert all(d.startswith("cuda") for d in devices["rollout"])
    assert "devices: learner cuda" in proc.stderr
    assert summary["oracle_nll_after_adversarial"] > 0


@cuda
def test_a_checkpoint_written_on_the_gpu_resumes_on_the_cpu_and_back(tmp_path):
    """Random-generator states differ in kind between devices: the resumed run reseeds from
    the saved state instead of failing (tests/unit/test_roles.py checks that part on the CPU)."""
    cfg = str(tiny_config(tmp_path))
    first = run_py("--no-ray", "--config", cfg, "run.name=x", "train.adv_iterations=1")
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "runs" / "x"
    assert json.loads((run / "summary.json").read_text())["devices"]["learner"].startswith("cuda")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    on_cpu = run_py("--no-ray", "--resume", str(run), "train.adv_iterations=2", env=env)
    assert on_cpu.returncode == 0, on_cpu.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["devices"]["learner"] == "cpu"
    back = run_py("--no-ray", "--resume", str(run), "train.adv_iterations=3")
    assert back.returncode == 0, back.stderr[-3000:]
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals if r["phase"] == "adversarial" and "eval/oracle_nll" in r] == [1, 2, 3]


@cuda
def test_roles_train_on_the_gpu(tiny_cfg):
    learner, disc = GeneratorLearner(tiny_cfg, 0), DiscriminatorTrainer(tiny_cfg, 10)
    assert learner.device_name().startswith("cuda") and disc.device_name().startswith("cuda")
    real = make_generator(tiny_cfg, 99).sample(256, generator=torch.Generator().manual_seed(0))
    learner.set_data(real)
    disc.set_data(real)
    losses = [learner.pretrain_epoch() for _ in range(3)]
    assert losses[-1] < losses[0]
    stats = disc.train(learner.sample(256), epochs=2)
    assert 0 < stats.loss < 10


def _graph_trainer(cfg, graph: bool, dropout: float):
    cfg = copy.deepcopy(cfg)
    cfg.train.cuda_graphs, cfg.discriminator.dropout = graph, dropout
    cfg.discriminator.batch_size = 32
    return DiscriminatorTrainer(cfg, 10)


def _params(t: DiscriminatorTrainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in t.discriminator.parameters()])


@cuda
def test_the_graphed_discriminator_step_trains_as_the_eager_one(tiny_cfg):
    real = make_generator(tiny_cfg, 99).sample(300, generator=torch.Generator().manual_seed(0))
    fake = make_generator(tiny_cfg, 98).sample(300, generator=torch.Generator().manual_seed(1))
    eager, graphed = _graph_trainer(tiny_cfg, False, 0.0), _graph_trainer(tiny_cfg, True, 0.0)
    for t in (eager, graphed):
        t.set_data(real)
    se, sg = eager.train(fake, 3), graphed.train(fake, 3)  # 600 rows: 18 full batches and a part
    assert graphed.graphed.replaying
    assert rel_err(_params(graphed), _params(eager)) < 1e-5
    assert se.loss == pytest.approx(sg.loss, rel=1e-5) and se.acc_real == sg.acc_real


@cuda
def test_graphed_mle_epochs_train_as_eager_ones(tiny_cfg):
    real = make_generator(tiny_cfg, 99).sample(300, generator=torch.Generator().manual_seed(0))
    learners = []
    for graph in (False, True):
        cfg = copy.deepcopy(tiny_cfg)
        cfg.train.cuda_graphs = graph
        learner = GeneratorLearner(cfg, 0)
        learner.set_data(real)
        learners.append((learner, [learner.pretrain_epoch() for _ in range(3)]))
    (eager, le), (graphed, lg) = learners
    assert graphed.graphed_mle.replaying and eager.graphed_mle is None
    assert le == pytest.approx(lg, rel=1e-5) and lg[-1] < lg[0]
    assert rel_err(graphed.generator.W.detach(), eager.generator.W.detach()) < 1e-5
    # scheduled sampling (a rate that changes every epoch) stays eager, beside the graph
    assert graphed.pretrain_epoch(sampling_prob=0.3) > 0


@cuda
def test_graphed_training_with_dropout_resumes_exactly(tiny_cfg):
    """Replays draw dropout masks from the trainer's own generator: a state saved after
    graphed epochs and loaded into a new trainer continues with the very same numbers."""
    real = make_generator(tiny_cfg, 99).sample(300, generator=torch.Generator().manual_seed(0))
    fake = make_generator(tiny_cfg, 98).sample(300, generator=torch.Generator().manual_seed(1))
    a = _graph_trainer(tiny_cfg, True, 0.5)
    a.set_data(real)
    a.train(fake, 2)
    assert a.graphed.replaying
    b = _graph_trainer(tiny_cfg, True, 0.5)
    b.set_data(real)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    a.train(fake, 2)
    b.train(fake, 2)
    assert torch.equal(_params(a), _params(b))
    c = _graph_trainer(tiny_cfg, True, 0.5)  # and the masks do change from batch to batch
    c.set_data(real)
    c.train(fake, 2)
    before = _params(c)
    c.train(fake, 1)
    assert not torch.equal(before, _params(c))
