"""Fast BLEU-n and Self-BLEU-n, numerically identical to Texygen's nltk-based definitions.

Texygen (Zhu et al. 2018, "Texygen: A Benchmarking Platform for Text Generation Models",
``utils/metrics/Bleu.py`` and ``SelfBleu.py``) scores a set of generated sentences as

    BLEU-n      = mean_h  sentence_bleu(references=R,       hypothesis=h,   w, method1)
    Self-BLEU-n = mean_i  sentence_bleu(references=S \\ {i}, hypothesis=S_i, w, method1)

with uniform weights ``w = (1/n,) * n`` and ``nltk.translate.bleu_score.SmoothingFunction().method1``.
nltk's ``sentence_bleu`` (Papineni et al. 2002, "BLEU: a method for automatic evaluation of
machine translation") is, for one hypothesis h of length c:

    p_k = Σ_g min(count_h(g), max_r count_r(g)) / max(1, #k-grams of h)    (modified precision)
    p_k = 0.1 / max(1, #k-grams of h)       if the numerator is 0           (method1, epsilon=0.1)
    r   = the reference length closest to c, ties going to the shorter      (closest_ref_length)
    BP  = 1 if c > r, 0 if c == 0, else exp(1 - r / c)                      (brevity_penalty)
    BLEU-n = BP * exp(fsum_k (1/n) * log p_k)   and 0 when the unigram numerator is 0.

Calling nltk costs O(|R|) per hypothesis. Here everything that depends on R alone is
precomputed once in a `ReferenceIndex`: for every k-gram g the clip count ``max_r count_r(g)``
and the sorted set of reference lengths, so one hypothesis costs O(c * max_n).
For Self-BLEU's leave-one-out the max over the other sentences only differs from the max
over all when sentence i is the *unique* holder of the max; for those g the index also keeps
the runner-up count, and it keeps a multiset of lengths so that one copy of c can be left out.
The floating-point operations are the ones nltk performs, in the same order, so the results
are bit-identical on the same interpreter (tests check parity to 1e-9).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Sequence

Tokens = Sequence[str]
NGram = tuple[str, ...]

EPSILON = 0.1  # nltk SmoothingFunction(epsilon=0.1).method1


def _ngram_counts(tokens: Tokens, k: int) -> Counter[NGram]:
    """Counts of the k-grams of `tokens` (nltk.util.ngrams); empty when len(tokens) < k."""
    return Counter(zip(*[tokens[j:] for j in range(k)]))


class ReferenceIndex:
    """Per-reference-set statistics for scoring any number of hypotheses against it.

    Args:
        references: the reference sentences (each a sequence of tokens); at least one.
        max_n: highest n-gram order that will be scored (BLEU-2 .. BLEU-max_n).
        leave_one_out: also keep what Self-BLEU needs (runner-up clip counts), so that
            ``sentence_bleu(h, leave_out_self=True)`` can score a member h against the rest.
    """

    def __init__(self, references: Iterable[Tokens], max_n: int = 5, *,
                 leave_one_out: bool = False) -> None:
        if max_n < 2:
            raise ValueError(f"max_n must be >= 2, got {max_n}")
        self.max_n = max_n
        self.leave_one_out = leave_one_out
        # _max[k-1][g] = max over references of count(g); _runner_up[k-1][g] = max over the
        # references that do not hold that max, stored only where exactly one reference holds it.
        self._max: list[dict[NGram, int]] = [{} for _ in range(max_n)]
        self._runner_up: list[dict[NGram, int]] = [{} for _ in range(max_n)]
        holders: list[dict[NGram, int]] = [{} for _ in range(max_n)]
        second: list[dict[NGram, int]] = [{} for _ in range(max_n)]
        self._length_counts: Counter[int] = Counter()
        for ref in references:
            self._length_counts[len(ref)] += 1
            for k in range(1, min(max_n, len(ref)) + 1):
                mx = self._max[k - 1]
                if not leave_one_out:
                    for g, v in _ngram_counts(ref, k).items():
                        if v > mx.get(g, 0):
                            mx[g] = v
                    continue
                hold, sec = holders[k - 1], second[k - 1]
                for g, v in _ngram_counts(ref, k).items():
                    m = mx.get(g, 0)
                    if v > m:
                        mx[g], sec[g], hold[g] = v, m, 1
                    elif v == m:
                        hold[g] += 1
                    elif v > sec[g]:
                        sec[g] = v
        if not self._length_counts:
            raise ValueError("at least one reference sentence is needed")
        for k in range(max_n):
            self._runner_up[k] = {g: second[k][g] for g, h in holders[k].items() if h == 1}
        self._lengths = sorted(self._length_counts)
        self.num_references = sum(self._length_counts.values())

    def closest_ref_length(self, hyp_len: int, leave_out: int | None = None) -> int:
        """nltk's closest_ref_length: min over reference lengths of (|r - c|, r).

        `leave_out` removes one reference of that length first (Self-BLEU's sentence i).
        """
        lengths = self._lengths
        i = bisect.bisect_left(lengths, hyp_len)
        # One length at most is excluded, so two candidates on each side suffice.
        candidates = [r for r in lengths[max(0, i - 2):i + 2]
                      if r != leave_out or self._length_counts[r] > 1]
        if not candidates:
            raise ValueError("no reference left after leaving the hypothesis out")
        return min(candidates, key=lambda r: (abs(r - hyp_len), r))

    def precisions(self, hypothesis: Tokens, *, leave_out_self: bool = False
                   ) -> list[tuple[int, int]]:
        """(numerator, denominator) of nltk's modified_precision for k = 1..max_n.

        With `leave_out_self`, `hypothesis` must be one of the indexed references; one copy
        of it is left out of the clip counts.
        """
        if leave_out_self and not self.leave_one_out:
            raise ValueError("build the index with leave_one_out=True for leave_out_self")
        length = len(hypothesis)
        out: list[tuple[int, int]] = []
        for k in range(1, self.max_n + 1):
            if length < k:
                out.append((0, 1))
                continue
            mx = self._max[k - 1]
            num = 0
            if leave_out_self:
                runner_up = self._runner_up[k - 1]
                for g, c in _ngram_counts(hypothesis, k).items():
                    m = mx[g]
                    if c == m and g in runner_up:  # the hypothesis is the unique max holder
                        m = runner_up[g]
                    num += c if c < m else m
            else:
                for g, c in _ngram_counts(hypothesis, k).items():
                    m = mx.get(g, 0)
                    num += c if c < m else m
            out.append((num, length - k + 1))
        return out

    def sentence_bleu(self, hypothesis: Tokens, *, leave_out_self: bool = False
                      ) -> dict[int, float]:
        """{n: nltk sentence_bleu(refs, hypothesis, (1/n,)*n, method1)} for n = 2..max_n."""
        orders = range(2, self.max_n + 1)
        prec = self.precisions(hypothesis, leave_out_self=leave_out_self)
        if prec[0][0] == 0:  # no matching unigram: nltk returns 0 before smoothing
            return {n: 0.0 for n in orders}
        c = len(hypothesis)
        r = self.closest_ref_length(c, leave_out=c if leave_out_self else None)
        bp = 1.0 if c > r else math.exp(1 - r / c)  # c > 0 here: a unigram matched
        logs = [math.log(num / den if num else EPSILON / den) for num, den in prec]
        out: dict[int, float] = {}
        for n in orders:
            w = 1.0 / n
            out[n] = bp * math.exp(math.fsum(w * lp for lp in logs[:n]))
        return out

    def bleu(self, hypotheses: Iterable[Tokens]) -> dict[int, float]:
        """Texygen BLEU-n (mean sentence BLEU over `hypotheses`) for n = 2..max_n."""
        return _mean(self.sentence_bleu(h) for h in hypotheses)


def _mean(per_sentence: Iterable[dict[int, float]]) -> dict[int, float]:
    """Per-order mean, summed in sentence order with sum() as Texygen does."""
    columns: dict[int, list[float]] = {}
    for scores in per_sentence:
        for n, s in scores.items():
            columns.setdefault(n, []).append(s)
    if not columns:
        raise ValueError("no hypotheses to score")
    return {n: sum(col) / len(col) for n, col in columns.items()}


def bleu(hypotheses: Iterable[Tokens], references: Iterable[Tokens],
         max_n: int = 5) -> dict[int, float]:
    """Texygen BLEU-2..max_n of `hypotheses` against all of `references`.

    Equals, for each n, ``mean_h nltk.translate.bleu_score.sentence_bleu(references, h,
    (1/n,)*n, smoothing_function=SmoothingFunction().method1)``.
    """
    return ReferenceIndex(references, max_n).bleu(hypotheses)


def self_bleu(sentences: Sequence[Tokens], max_n: int = 5) -> dict[int, float]:
    """Texygen Self-BLEU-2..max_n (leave-one-out) of `sentences` (at least two).

    Equals, for each n, ``mean_i sentence_bleu(sentences[:i] + sentences[i+1:],
    sentences[i], (1/n,)*n, smoothing_function=SmoothingFunction().method1)``.
    """
    if len(sentences) < 2:
        raise ValueError("Self-BLEU needs at least two sentences")
    index = ReferenceIndex(sentences, max_n, leave_one_out=True)
    return _mean(index.sentence_bleu(s, leave_out_self=True) for s in sentences)
