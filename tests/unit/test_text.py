"""Variable-length text: masking in sampling, losses and rewards; a whole text run; `run.py sample`."""

from __future__ import annotations

import json

import pytest
import torch

from seqgan_ray.cli import main
from seqgan_ray.losses import mle_loss, policy_gradient_loss
from seqgan_ray.models.policy import LSTMPolicy, end_at_eos, token_mask
from seqgan_ray.rollout import complete_prefixes, rollout_uniforms
from seqgan_ray.tasks.corpus import EOS, PAD, Vocab
from tests.helpers import TINY_TEXT, text_corpus


def test_token_mask_keeps_tokens_up_to_the_first_eos():
    seqs = torch.tensor([[5, 6, EOS, 7, EOS], [EOS, 5, 5, 5, 5], [5, 5, 5, 5, 5]])
    mask = token_mask(seqs, EOS)
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert end_at_eos(seqs, EOS).tolist() == [[5, 6, EOS, PAD, PAD], [EOS, PAD, PAD, PAD, PAD],
                                              [5, 5, 5, 5, 5]]


def test_padding_does_not_count_in_the_losses():
    seqs = torch.tensor([[5, EOS, PAD, PAD], [5, 6, 7, EOS]])
    mask = token_mask(seqs, EOS)
    logp = torch.tensor([[-1.0, -2.0, -50.0, -60.0], [-1.0, -1.0, -1.0, -3.0]])
    other = logp.masked_fill(~mask, -999.0)  # whatever sits on the padding
    assert mle_loss(logp, mask).item() == pytest.approx((1 + 2 + 1 + 1 + 1 + 3) / 6)
    assert mle_loss(other, mask).item() == mle_loss(logp, mask).item()
    rewards = torch.rand(2, 4)
    assert policy_gradient_loss(other, rewards, mask).item() == pytest.approx(
        policy_gradient_loss(logp, rewards, mask).item())


def _policy(eos: int | None) -> LSTMPolicy:
    p = LSTMPolicy(12, 6, 6, 8, start_token=1, eos_token=eos)
    p.reset_parameters(1.0, torch.Generator().manual_seed(0))  # not the global RNG: any test order
    with torch.no_grad():  # make <eos> likely, so many rows end early
        p.b_out[EOS] += 3.0
    return p


def test_samples_and_rollout_completions_end_at_eos():
    policy = _policy(EOS)
    seqs = policy.sample(200, generator=torch.Generator().manual_seed(0))
    assert (seqs == EOS).any(1).float().mean() > 0.5
    assert torch.equal(seqs, end_at_eos(seqs, EOS))
    u = rollout_uniforms(16, 8, 3, generator=torch.Generator().manual_seed(1))
    done = complete_prefixes(policy, seqs[:16], 3, u).reshape(-1, 8)
    assert torch.equal(done, end_at_eos(done, EOS))
    # completions of a prefix that already ended are that sequence: nothing follows <eos>
    first_eos = (seqs[:16] == EOS).int().argmax(1)
    ended = [(b, t) for b in range(16) for t in range(1, 8) if (seqs[b, :t] == EOS).any()]
    for b, t in ended:
        assert torch.equal(done.view(7, 3, 16, 8)[t - 1, :, b], seqs[b].expand(3, 8))
    assert ended and first_eos.min() >= 0
    # without an end token nothing is padded
    free = _policy(None).sample(200, generator=torch.Generator().manual_seed(0))
    assert (free == PAD).sum() < (seqs == PAD).sum()


def test_text_run_end_to_end_then_sample_then_resume_checks_the_vocabulary(tmp_path, capsys):
    train, test = text_corpus(tmp_path / "text")
    out = f"run.out_dir={tmp_path / 'runs'}"
    assert main(["--no-ray", f"data.corpus={train}", f"data.test_text={test}", out, "run.name=t",
                 *TINY_TEXT]) == 0
    run = tmp_path / "runs" / "t"
    printed = capsys.readouterr().out
    assert "after adversarial: NLL-test" in printed and "BLEU-2..5" in printed
    summary = json.loads((run / "summary.json").read_text())
    final = summary["eval_after_adversarial"]
    assert summary["metric"] == "eval/nll_test" and 0 < final["eval/nll_test"] < 10
    for n in range(2, 6):
        assert 0 <= final[f"eval/bleu{n}"] <= 1 and 0 <= final[f"eval/self_bleu{n}"] <= 1
    words = set((tmp_path / "text" / "train.txt").read_text().split())
    samples = (run / "samples.txt").read_text().splitlines()
    assert samples and all(set(line.split()) <= words | {"<unk>"} for line in samples)
    assert (run / "nll_test.png").is_file() and (run / "vocab.txt").is_file()
    config = (run / "config.yaml").read_text()
    assert "eos_token: 2" in config and "start_token: 1" in config  # set from the corpus

    assert main(["sample", "--run", str(run), "--num", "7", "--temperature", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and all(set(line.split()) <= words | {"<unk>"} for line in lines)

    vocab = Vocab.load(run / "corpus")  # a corpus whose words differ from the run's
    (run / "corpus" / "vocab.txt").write_text("\n".join([*vocab.words[:4], *reversed(vocab.words[4:])]) + "\n")
    assert main(["--no-ray", "--resume", str(run), "train.adv_iterations=3"]) == 2
    assert "differs from the vocabulary this run was trained with" in capsys.readouterr().err


def test_missing_corpus_is_named(tmp_path, capsys):
    assert main(["--no-ray", f"data.corpus={tmp_path / 'nope.txt'}", f"run.out_dir={tmp_path}"]) == 2
    assert "data.corpus: " in capsys.readouterr().err


def test_ray_train_pretraining_needs_a_corpus_and_shuffled_batches():
    from seqgan_ray.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="train.pretrain_workers"):
        load_config(None, ["train.pretrain_workers=2"])
    with pytest.raises(ConfigError, match="generator.shuffle"):
        load_config(None, ["train.pretrain_workers=2", "data.corpus=x", "generator.shuffle=false"])
