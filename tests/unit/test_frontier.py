"""`run.py evaluate`: the tempered NLL, the frontier of a trained generator, its files and errors."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from seqgan_ray.cli import main
from seqgan_ray.config import ConfigError
from seqgan_ray.experiments.frontier import (
    DEFAULT_TEMPERATURES,
    FILES,
    FrontierPoint,
    frontier,
    frontier_markdown,
    load_run,
    load_runs,
    load_tasks,
    parse_temperatures,
    write_frontier,
)
from seqgan_ray.kernels.token_logprob import TokenLogProb
from seqgan_ray.models.policy import LSTMPolicy
from seqgan_ray.tasks.text import load_task

DOWN = (1.3, 1.2, 1.1, 1.0, 0.9, 0.8, 0.7)


def _policy(eos: int | None = None) -> tuple[LSTMPolicy, torch.Tensor]:
    """A policy big enough for several TokenLogProb blocks and oneDNN's products, and sequences
    (B, T) it did not sample (so every token's probability matters)."""
    policy = LSTMPolicy(300, 16, 32, 12, eos_token=eos)
    policy.reset_parameters(0.5, torch.Generator().manual_seed(0))
    seqs = torch.randint(3, 300, (100, 12), generator=torch.Generator().manual_seed(1))
    if eos is not None:
        seqs[::3, 5] = eos  # a third of the rows end early
    return policy, policy.finish(seqs)


def test_temperature_one_is_the_untempered_computation_bit_for_bit():
    policy, seqs = _policy()
    with torch.no_grad():
        h, _ = policy.hidden_states(seqs)  # (B, T, H)
        before = TokenLogProb.apply(h.reshape(-1, 32), policy.W_out, policy.b_out, seqs.reshape(-1)).view(seqs.shape)
        assert torch.equal(policy.log_probs(seqs), before)
        assert torch.equal(policy.log_probs(seqs, temperature=1.0), before)
    assert policy.nll(seqs, temperature=1.0) == policy.nll(seqs) == -before.double().mean().item()
    assert torch.equal(policy.sequence_nll(seqs, temperature=1.0), -before.double().mean(1))


@pytest.mark.parametrize("eos", [None, 2])
@pytest.mark.parametrize("tau", [0.5, 0.7, 1.3, 2.0])
def test_tempered_nll_is_the_nll_of_softmax_of_logits_over_tau(tau, eos):
    policy, seqs = _policy(eos)
    with torch.no_grad():
        h, _ = policy.hidden_states(seqs)
        plain = F.log_softmax(policy.logits(h.reshape(-1, 32)) / tau, dim=-1)  # (B·T, V)
        plain = plain.gather(1, seqs.reshape(-1, 1)).view(seqs.shape).double()  # (B, T)
        torch.testing.assert_close(policy.log_probs(seqs, temperature=tau).double(), plain,
                                   rtol=1e-5, atol=1e-5)
    mask = torch.ones_like(seqs, dtype=torch.bool) if eos is None else policy.mask(seqs)
    per_seq = -(plain * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(policy.sequence_nll(seqs, temperature=tau), per_seq, rtol=1e-6, atol=1e-6)
    assert policy.nll(seqs, temperature=tau) == pytest.approx(-(plain[mask]).mean().item(), rel=1e-6)
    assert policy.nll(seqs, temperature=tau) != pytest.approx(policy.nll(seqs), rel=1e-3)


def test_nll_oracle_falls_as_the_temperature_falls(trained):
    cfg, generator = load_run(trained)
    points = frontier(cfg, load_task(cfg.data), generator, DOWN, num=128, seed=0, device="cpu")
    assert [p.temperature for p in points] == list(DOWN)
    oracle = [p.oracle_nll for p in points]
    # monotone at every step here (and for seeds 0-4, checked by hand): the uniforms are the
    # same at every temperature, so the steps are not lost in sampling noise
    assert all(a > b for a, b in zip(oracle, oracle[1:])), oracle
    # sharper samples cover less: NLL-test is not monotone (lowest near 1.2 for this barely
    # trained generator), but 0.7 is well above 1.0
    test = {p.temperature: p.nll_test for p in points}
    assert test[0.7] > test[1.0] + 0.05
    assert all(p.oracle_nll_ci95 > 0 and p.bleu is None for p in points)


def test_the_row_at_temperature_one_is_what_training_evaluation_gives(trained):
    cfg, generator = load_run(trained)
    task = load_task(cfg.data)
    [point] = frontier(cfg, task, generator, [1.0], num=128, seed=3, device="cpu")
    want = task.evaluate(generator.sample(128, generator=torch.Generator().manual_seed(3)), generator.nll)
    assert point == FrontierPoint(1.0, want["eval/nll_test"], oracle_nll=want["eval/oracle_nll"],
                                  oracle_nll_ci95=want["eval/oracle_nll_ci95"])


def test_num_defaults_to_the_runs_eval_samples_and_bad_arguments_are_refused(trained):
    cfg, generator = load_run(trained)
    task = load_task(cfg.data)
    [a] = frontier(cfg, task, generator, [1.0], device="cpu")
    [b] = frontier(cfg, task, generator, [1.0], num=cfg.train.eval_samples, seed=0, device="cpu")
    assert a == b
    for temps, num in (([1.0, 0.0], 8), ([], 8), ([float("nan")], 8), ([1.0], 0)):
        with pytest.raises(ConfigError):
            frontier(cfg, task, generator, temps, num=num, seed=0)


def test_parse_temperatures():
    assert parse_temperatures("0.7,0.8,...,1.3") == DOWN[::-1] == DEFAULT_TEMPERATURES  # the CLI's default
    assert parse_temperatures("1.3, 1.2, ..., 0.7") == DOWN
    assert parse_temperatures("0.5,0.75,...,1.5") == (0.5, 0.75, 1.0, 1.25, 1.5)
    assert parse_temperatures("1") == (1.0,)
    assert parse_temperatures("0.9,1,1.1") == (0.9, 1.0, 1.1)
    for bad in ("", "abc", "0.8,,1", "1,0", "0.8,-1", "inf", "0.7,...,1.3", "0.7,0.8,...,1.25",
                "0.7,0.8,...", "0.7,0.7,...,1", "0.8,0.7,...,1.3"):
        with pytest.raises(ConfigError, match="--temperatures"):
            parse_temperatures(bad)


def test_the_table_and_files_of_several_runs(run_dir, tmp_path, capsys):
    second = tmp_path / "from_checkpoint"
    shutil.copytree(run_dir, second)
    (second / "generator.pt").unlink()  # read from its newest checkpoint instead
    out = tmp_path / "together"
    assert main(["evaluate", "--run", str(run_dir), str(second), "--num", "32",
                 "--temperatures", "0.8,1,1.2", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "| run | temperature | NLL-oracle | ± | NLL-test |"
    for folder in (run_dir, second, out):
        assert all((folder / name).is_file() for name in FILES)
    with open(out / "frontier.csv", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == ["run", "temperature", "NLL-oracle", "±", "NLL-test"]
    assert [r[:2] for r in table[1:]] == [[n, t] for n in ("tiny", "from_checkpoint") for t in ("0.8", "1.0", "1.2")]
    # generator.pt is the generator of the last checkpoint: the two runs' rows agree
    assert [r[2:] for r in table[1:4]] == [r[2:] for r in table[4:]]
    assert (out / "frontier.md").read_text(encoding="utf-8") == printed
    assert len((run_dir / "frontier.csv").read_text(encoding="utf-8").splitlines()) == 4  # its own rows


def test_runs_of_one_oracle_share_one_task(run_dir, tmp_path):
    other = Path(shutil.copytree(run_dir, tmp_path / "runs" / "tiny"))  # the same name: labelled by path
    runs = load_runs([run_dir, other])
    assert list(runs) == [str(run_dir), str(other)]
    tasks = load_tasks(runs)
    assert tasks[str(run_dir)] is tasks[str(other)]


def test_writer_for_a_text_frontier(tmp_path):
    points = [FrontierPoint(t, 3.0 + t, bleu=(0.9, 0.7, 0.5, 0.3), self_bleu=(0.95, 0.8, 0.6, 0.4 + t / 10))
              for t in (0.8, 1.0)]
    paths = write_frontier({"coco": points}, tmp_path / "out")
    assert [p.name for p in paths] == list(FILES) and all(p.is_file() for p in paths)
    md = frontier_markdown({"coco": points}).splitlines()
    assert md[0] == ("| run | temperature | BLEU-2 | BLEU-3 | BLEU-4 | BLEU-5 | Self-BLEU-2 | Self-BLEU-3 "
                     "| Self-BLEU-4 | Self-BLEU-5 | NLL-test |")
    assert md[2] == "| coco | 0.8 | 0.900 | 0.700 | 0.500 | 0.300 | 0.950 | 0.800 | 0.600 | 0.480 | 3.800 |"
    synthetic = [FrontierPoint(1.0, 3.0, oracle_nll=3.5, oracle_nll_ci95=0.1)]
    with pytest.raises(ConfigError, match="mix the synthetic task and a text task"):
        frontier_markdown({"coco": points, "oracle": synthetic})


def _bad_inputs(run: Path, tmp: Path) -> dict[str, tuple[list[str], str]]:
    bare = tmp / "bare"  # a run folder with neither generator.pt nor checkpoints
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("generator.pt", "checkpoints"))
    (tmp / "empty").mkdir()
    r = ["--run", str(run)]
    return {
        "not a run": (["--run", str(tmp / "empty")], "not a run folder (no config.yaml)"),
        "no generator": (["--run", str(bare)], "no generator.pt and no checkpoint"),
        "no such checkpoint": ([*r, "--checkpoint", str(tmp / "nope.pt")], "no such checkpoint file"),
        "checkpoint of several runs": ([*r, str(bare), "--checkpoint", str(tmp / "nope.pt")], "single run"),
        "words": ([*r, "--temperatures", "hot,cold"], "--temperatures 'hot,cold'"),
        "zero": ([*r, "--temperatures", "0.5,0"], "--temperatures '0.5,0'"),
        "negative": ([*r, "--temperatures", "-1"], "--temperatures '-1'"),
        "empty": ([*r, "--temperatures", ""], "--temperatures ''"),
        "num": ([*r, "--num", "0"], "--num 0"),
        "bad run among good": ([*r, "--run", str(tmp / "empty"), "--out", str(tmp / "out")], "not a run folder"),
    }


def test_each_bad_input_is_one_error_line_and_writes_nothing(run_dir, tmp_path, capsys):
    for name, (args, message) in _bad_inputs(run_dir, tmp_path).items():
        assert main(["evaluate", *args]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (name, err)
    assert not list(tmp_path.rglob("frontier.*")) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["lstm", "leakgan"])
def test_nll_at_every_temperature_is_the_samplers_tempered_distribution(kind):
    """`nll_at` reads G's states once for all temperatures (the frontier's NLL-test): each of its
    values is the NLL under the very distribution `sample(..., temperature=τ)` draws from, step
    by step (for LeakGAN, its Manager reading D's features of each prefix as it grows)."""
    from tests.unit.test_leakgan import policy as leakgan_policy

    if kind == "lstm":
        policy, seqs = _policy(eos=2)
    else:
        policy = leakgan_policy()
        seqs = torch.randint(1, 30, (40, 8), generator=torch.Generator().manual_seed(1))
    taus = [0.6, 1.0, 1.7]
    at = policy.nll_at(seqs, taus, batch=16)  # several batches
    with torch.no_grad():  # the sampler's logits, step by step (B, T, V)
        B, steps = seqs.shape[0], []
        state = policy.initial_state(B) if kind == "lstm" else policy.begin(B)
        for p in range(seqs.shape[1]):
            if kind == "lstm":
                state = policy.step(seqs[:, p - 1] if p else torch.full((B,), policy.start_token), state)
                steps.append(policy.logits(state[0]))
            else:
                state = policy.step(seqs[:, p - 1], state) if p else state
                steps.append(policy.goal_logits(state[0], state[5]))
        logits = torch.stack(steps, 1).double()
    mask = policy.mask(seqs) if kind == "lstm" else torch.ones_like(seqs, dtype=torch.bool)
    for tau, value in zip(taus, at):
        logp = F.log_softmax(logits / tau, -1).gather(-1, seqs[..., None]).squeeze(-1)
        assert value == pytest.approx(-logp[mask].mean().item(), rel=1e-5)
        assert value == policy.nll(seqs, temperature=tau, batch=16)
    assert at[0] != pytest.approx(at[2], rel=1e-2)
