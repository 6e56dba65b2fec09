"""The likelihood-ratio ceiling of the synthetic task (experiments/separability.py)."""

import copy

import torch

from seqgan_ray.config import config_from_dict
from seqgan_ray.experiments.separability import ratio_accuracy, report, separability, train_d
from seqgan_ray.tasks.synthetic import seeded_oracle
from tests.conftest import TINY


def _oracle(seed: int):
    cfg = config_from_dict({k: dict(v) for k, v in TINY.items()})
    cfg.data.oracle_seed = seed
    return cfg, seeded_oracle(cfg.data)


def test_a_generator_equal_to_the_oracle_cannot_be_told_apart():
    cfg, oracle = _oracle(0)
    training = oracle.sample(300, generator=torch.Generator().manual_seed(5))
    s = separability(oracle, copy.deepcopy(oracle), training, samples=300)
    assert s.bayes_fresh == 0.5 and s.bayes_training == 0.5  # equal likelihoods: every sequence called fake
    assert s.oracle_nll == s.generator_nll
    assert abs(s.oracle_nll["training"] - s.oracle_nll["fresh"]) < 0.2  # both the oracle's own samples


def test_another_oracle_is_told_apart_and_memorised_training_sequences_show():
    _, oracle = _oracle(0)
    _, other = _oracle(1)
    training = oracle.sample(300, generator=torch.Generator().manual_seed(5))
    s = separability(oracle, other, training, samples=300)
    assert s.bayes_fresh > 0.9
    assert s.generator_nll["fresh"] > s.oracle_nll["fresh"] + 0.5  # another model: worse on the oracle's samples
    # the likelihood ratio on explicit sets, as separability computes it
    fresh = oracle.sample(300, generator=torch.Generator().manual_seed(0))
    fake = other.sample(300, generator=torch.Generator().manual_seed(1))
    assert ratio_accuracy(oracle, other, fresh, fake) == s.bayes_fresh
    text = report(s, "x")
    assert f"accuracy {s.bayes_fresh:.3f} on fresh oracle samples" in text
    assert f"| G | {s.generator_nll['training']:.3f} |" in text


def test_a_fresh_d_learns_to_tell_another_model_from_the_oracle():
    """train_d's rounds: after round 1, every `every` rounds and the last; a D against a G that
    is another model entirely learns it on held-out samples too."""
    cfg, oracle = _oracle(0)
    _, other = _oracle(1)
    cfg.train.num_negatives, cfg.train.pretrain_d_epochs = 128, 3
    training = oracle.sample(256, generator=torch.Generator().manual_seed(5))
    recs = list(train_d(cfg, oracle, other, training, 7, samples=200, every=5))
    assert [r["round"] for r in recs] == [1, 5, 7]
    assert recs[-1]["heldout"] > 0.6 and recs[-1]["heldout"] > recs[0]["heldout"]
