"""seqgan_ray.tasks.bleu against nltk's sentence_bleu (Texygen's BLEU / Self-BLEU definitions)."""

from __future__ import annotations

import math
import random

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from seqgan_ray.tasks.bleu import ReferenceIndex, bleu, self_bleu
from tests.helpers import ROOT

TOL = 1e-9


ORDERS = (2, 3, 4, 5)


COCO = ROOT.parent / "shared/data/coco"


def nltk_sentence(refs: list[list[str]], hyp: list[str], n: int) -> float:
    return sentence_bleu(refs, hyp, (1.0 / n,) * n, smoothing_function=SmoothingFunction().method1)


def nltk_bleu(hyps: list[list[str]], refs: list[list[str]], n: int) -> float:
    scores = [nltk_sentence(refs, h, n) for h in hyps]
    return sum(scores) / len(scores)


def nltk_self_bleu(sents: list[list[str]], n: int) -> float:
    scores = [nltk_sentence(sents[:i] + sents[i + 1:], s, n) for i, s in enumerate(sents)]
    return sum(scores) / len(scores)


def random_sentences(rng: random.Random, count: int) -> list[list[str]]:
    vocab = [f"w{i}" for i in range(20)]
    # Skewed word choice so that repeated n-grams (and clipping) are common.
    sents = [[vocab[min(int(rng.expovariate(0.25)), 19)] for _ in range(rng.randint(0, 15))]
             for _ in range(count)]
    sents[:4] = [[], [vocab[0]], [vocab[19]], [vocab[0], vocab[0]]]  # empty, 1-word, no match
    sents.append(list(sents[10]))  # an exact duplicate
    rng.shuffle(sents)
    return sents


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bleu_matches_nltk_on_random_sentences(seed: int) -> None:
    rng = random.Random(seed)
    hyps, refs = random_sentences(rng, 60), random_sentences(rng, 80)
    index = ReferenceIndex(refs, max_n=5)
    for h in hyps:  # every sentence, not just the mean
        ours = index.sentence_bleu(h)
        assert sorted(ours) == list(ORDERS)
        for n in ORDERS:
            assert abs(ours[n] - nltk_sentence(refs, h, n)) <= TOL, (h, n)
    ours = bleu(hyps, refs, max_n=5)
    for n in ORDERS:
        assert abs(ours[n] - nltk_bleu(hyps, refs, n)) <= TOL


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_self_bleu_matches_nltk_on_random_sentences(seed: int) -> None:
    sents = random_sentences(random.Random(100 + seed), 60)
    ours = self_bleu(sents, max_n=5)
    assert sorted(ours) == list(ORDERS)
    for n in ORDERS:
        assert abs(ours[n] - nltk_self_bleu(sents, n)) <= TOL
    index = ReferenceIndex(sents, max_n=5, leave_one_out=True)
    for i, s in enumerate(sents):
        ours_i = index.sentence_bleu(s, leave_out_self=True)
        for n in (2, 4):
            assert abs(ours_i[n] - nltk_sentence(sents[:i] + sents[i + 1:], s, n)) <= TOL, (s, n)


def test_smaller_max_n_only_returns_those_orders() -> None:
    sents = random_sentences(random.Random(7), 30)
    ours = bleu(sents[:15], sents[15:], max_n=3)
    assert sorted(ours) == [2, 3]
    for n in (2, 3):
        assert abs(ours[n] - nltk_bleu(sents[:15], sents[15:], n)) <= TOL


@pytest.mark.skipif(not (COCO / "train.txt").exists() or not (COCO / "test.txt").exists(),
                    reason="shared COCO captions not present")
def test_bleu_matches_nltk_on_coco() -> None:
    def read(name: str, count: int) -> list[list[str]]:
        with open(COCO / name, encoding="utf-8") as f:
            return [line.split() for _, line in zip(range(count), f)]

    hyps, refs = read("train.txt", 100), read("test.txt", 500)
    ours = bleu(hyps, refs, max_n=5)
    # One nltk call per hypothesis with all four weight tuples: the same p_k and arithmetic
    # as four separate calls (sentence_bleu computes each weight tuple independently).
    weights = [(1.0 / n,) * n for n in ORDERS]
    per_sentence = [sentence_bleu(refs, h, weights, smoothing_function=SmoothingFunction().method1)
                    for h in hyps]
    for j, n in enumerate(ORDERS):
        expected = sum(s[j] for s in per_sentence) / len(hyps)
        assert abs(ours[n] - expected) <= TOL
    assert 0.05 < ours[4] < 0.95  # a real, non-degenerate overlap was measured


def test_self_bleu_leaves_out_the_unique_max_holder() -> None:
    sents = ["a a a".split(), "a a".split(), ["b"]]
    index = ReferenceIndex(sents, max_n=2, leave_one_out=True)
    # "a a a" vs {"a a", "b"}: clip(a) = 2 of 3, clip(a a) = 1 of 2, r = 2 < c = 3 so BP = 1.
    assert index.sentence_bleu(sents[0], leave_out_self=True)[2] == pytest.approx(
        math.sqrt(2 / 3 * 1 / 2), abs=TOL)
    # Scoring against all three sentences (itself included) would give 1.
    assert index.sentence_bleu(sents[0])[2] == pytest.approx(1.0, abs=TOL)
    # "a a" vs {"a a a", "b"}: lengths 3 and 1 tie at distance 1, the shorter wins, BP = 1.
    assert index.sentence_bleu(sents[1], leave_out_self=True)[2] == pytest.approx(1.0, abs=TOL)
    assert index.sentence_bleu(sents[2], leave_out_self=True)[2] == 0.0
    expected = (math.sqrt(1 / 3) + 1.0 + 0.0) / 3
    assert self_bleu(sents, max_n=2)[2] == pytest.approx(expected, abs=TOL)
    assert abs(self_bleu(sents, max_n=2)[2] - nltk_self_bleu(sents, 2)) <= TOL


def test_self_bleu_max_held_by_several_sentences_stays() -> None:
    # "x y x y" holds count(x) = 2 together with "x x"; leaving it out keeps the max at 2.
    sents = ["x y x y".split(), "x x".split(), "y z".split(), "x y x".split()]
    ours = self_bleu(sents, max_n=4)
    for n in (2, 3, 4):
        assert abs(ours[n] - nltk_self_bleu(sents, n)) <= TOL


def test_self_bleu_leaves_out_the_own_length() -> None:
    # "a b" is the only length-2 sentence: against the others r = 4, so BP = exp(1 - 4/2).
    sents = ["a b".split(), "a b c d".split(), "a b c d e".split()]
    index = ReferenceIndex(sents, max_n=2, leave_one_out=True)
    assert index.sentence_bleu(sents[0], leave_out_self=True)[2] == pytest.approx(
        math.exp(-1.0), abs=TOL)
    assert abs(self_bleu(sents, max_n=3)[3] - nltk_self_bleu(sents, 3)) <= TOL


def test_self_bleu_duplicates_score_against_each_other() -> None:
    sents = ["x y z".split(), "x y z".split(), ["q"]]
    ours = self_bleu(sents, max_n=3)
    assert ours[2] == pytest.approx(2 / 3, abs=TOL)
    assert ours[3] == pytest.approx(2 / 3, abs=TOL)


def test_closest_length_tie_goes_to_the_shorter_reference() -> None:
    # c = 3 and references of lengths 2 and 4: r = 2 so BP = 1 (r = 4 would give exp(1 - 4/3)).
    refs = ["a b".split(), "a b c d".split()]
    assert bleu(["a b c".split()], refs, max_n=2)[2] == pytest.approx(1.0, abs=TOL)
    assert ReferenceIndex(refs).closest_ref_length(3) == 2


def test_short_and_empty_hypotheses() -> None:
    refs = ["a b".split()]
    # One word: p1 = 1, no bigrams so p2 = 0.1 / 1 (method1), BP = exp(1 - 2/1).
    assert bleu([["a"]], refs, max_n=2)[2] == pytest.approx(math.exp(-1) * math.sqrt(0.1), abs=TOL)
    assert bleu([[]], refs, max_n=3) == {2: 0.0, 3: 0.0}
    assert bleu([["z", "z"]], refs, max_n=2) == {2: 0.0}  # no matching unigram
    for h in ([], ["a"], ["b", "a"], ["a", "b", "a"]):
        for n in (2, 3):
            assert abs(bleu([h], refs, max_n=3)[n] - nltk_sentence(refs, h, n)) <= TOL


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        self_bleu([["a"]], max_n=2)
    with pytest.raises(ValueError):
        bleu([["a"]], [], max_n=2)
    with pytest.raises(ValueError):
        bleu([], [["a"]], max_n=2)
    with pytest.raises(ValueError):
        ReferenceIndex([["a"]], max_n=1)
    with pytest.raises(ValueError):
        ReferenceIndex([["a"]], max_n=2).sentence_bleu(["a"], leave_out_self=True)
