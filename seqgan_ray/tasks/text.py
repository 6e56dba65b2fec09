"""What the generator learns and how it is scored: the synthetic task or your own text.

`load_task(cfg.data, run_dir)` returns a `SyntheticTask` (tasks/synthetic.py) or a `TextTask`. Both
give `num_train`, sequences for what needs them at hand (`real`: the synthetic task's whole
training set, a bounded sample of a corpus's), a one-line `source`, the `metric` reported first,
an `evaluate(samples, nll)` that turns generator samples into metrics, and `write_samples`. A
corpus's training split is never loaded whole: `train_rows` reads it a few rows at a time
(reader.py), for the MLE epochs and the discriminator's real sentences.

A text corpus is a folder made by `python run.py prepare` (corpus.py), or a text file that
is prepared into `<run_dir>/corpus` on the run's first start. Its metadata fixes the model's
vocabulary size, sequence length and end token, so those keys of `data` are set from it.
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import torch

from ..config import DataConfig
from .bleu import ReferenceIndex, self_bleu
from .corpus import BOS, EOS, UNK, PrepareOptions, Vocab, load_metadata, prepare
from .reader import SplitReader
from .synthetic import SyntheticTask
from .synthetic import load_task as load_synthetic_task
from .token_file import DataError

BLEU_ORDERS = (2, 3, 4, 5)
REFERENCE_ROWS = 10_000  # the most held-out (data.test_sample -1) or training references held at once
SAMPLE_SEED = 0          # the corpus's fixed samples depend on it alone, never on run.seed


@dataclass
class TextTask:
    train_rows: SplitReader  # the training split, read a few rows at a time (reader.py)
    test: torch.Tensor   # (S', T) held-out sentences (data.test_sample of them): ids, <eos>, then PAD
    vocab: Vocab
    source: str
    folder: Path         # the prepared corpus (its Parquet shards feed Ray Train pretraining)
    metric = "eval/nll_test"

    def __post_init__(self):
        # BLEU references: each sentence as its id strings up to <eos>. An <unk> in a reference
        # stands for a word the generator cannot emit, so it gets a string nothing matches.
        self._refs = ReferenceIndex([_words(row, unk_as="<unk-ref>") for row in self.test],
                                    max(BLEU_ORDERS))

    @property
    def num_train(self) -> int:
        return len(self.train_rows)

    @cached_property
    def real(self) -> torch.Tensor:
        """(S, T) training sentences for what needs them at hand (a reward's references, e.g.
        PG-BLEU): a fixed sample of REFERENCE_ROWS, the whole split when it is smaller. Training
        itself streams the whole split through `train_rows`."""
        return self.train_rows.fixed_sample(min(REFERENCE_ROWS, self.num_train), SAMPLE_SEED)

    def evaluate(self, samples: torch.Tensor, nll: Callable[[torch.Tensor], float]) -> dict[str, float]:
        """NLL-test (the generator's NLL of the held-out text), BLEU-2..5 of `samples` against
        the held-out text and Self-BLEU-2..5 among `samples` (Texygen's definitions)."""
        hyps = [_words(row) for row in samples]
        metrics = {"eval/nll_test": nll(self.test)}
        metrics.update({f"eval/bleu{n}": v for n, v in self._refs.bleu(hyps).items() if n in BLEU_ORDERS})
        metrics.update({f"eval/self_bleu{n}": v for n, v in self_bleu(hyps, max(BLEU_ORDERS)).items()
                        if n in BLEU_ORDERS})
        return metrics

    @cached_property
    def _other_half(self) -> ReferenceIndex:
        """BLEU references of in-fills: the second half of the held-out sentences."""
        return ReferenceIndex([_words(row, unk_as="<unk-ref>") for row in self.test[len(self.test) // 2:]],
                              max(BLEU_ORDERS))

    def infill_metrics(self, filled: torch.Tensor) -> dict[str, float]:
        """MaskGAN's in-fills of the held-out sentences, in their order: BLEU-2..5 of those made
        from the first half of them against the second half (not against the sentences they were
        made from, whose present words they copy), and Self-BLEU-2..5 among them."""
        hyps = [_words(row) for row in filled[: len(self.test) // 2]]
        metrics = {f"eval/infill_bleu{n}": v for n, v in self._other_half.bleu(hyps).items() if n in BLEU_ORDERS}
        metrics.update({f"eval/infill_self_bleu{n}": v for n, v in self_bleu(hyps, max(BLEU_ORDERS)).items()
                        if n in BLEU_ORDERS})
        return metrics

    def decode(self, samples: torch.Tensor) -> list[str]:
        return [self.vocab.decode(row) for row in samples.tolist()]

    def write_samples(self, path: Path, samples: torch.Tensor) -> None:
        path.write_text("".join(line + "\n" for line in self.decode(samples)), encoding="utf-8")


def _words(row: torch.Tensor, *, unk_as: str | None = None) -> list[str]:
    """A sentence's ids as strings, up to (not including) its <eos>."""
    ids = row.tolist()
    ids = ids[:ids.index(EOS)] if EOS in ids else ids
    return [unk_as if (unk_as is not None and i == UNK) else str(i) for i in ids]


# The data keys a prepared corpus sets when its task is loaded (whatever the config said).
CORPUS_SETS = ("data.vocab_size", "data.seq_len", "data.start_token", "data.eos_token")


def load_task(data: DataConfig, run_dir: Path | None = None) -> SyntheticTask | TextTask:
    """The synthetic task, or the text corpus named by `data.corpus` (setting data's keys)."""
    if not data.corpus:
        return load_synthetic_task(data)
    folder = corpus_folder(data, run_dir)
    meta = load_metadata(folder)
    data.vocab_size, data.seq_len = meta["vocab_size"], meta["max_len"]
    data.start_token, data.eos_token = BOS, EOS
    vocab = Vocab.load(folder)
    if not meta["splits"].get("test", {}).get("kept"):
        raise DataError(f"{folder}: split 'test' has no sentences; prepare with --test FILE or "
                        f"--test-fraction to have a test split")
    train_rows = SplitReader(folder, "train")  # every shard checked before any training
    test_rows = SplitReader(folder, "test")
    test = test_rows.fixed_sample(test_sample_size(data.test_sample, len(test_rows), folder), SAMPLE_SEED)
    if run_dir is not None:
        _keep_vocab(folder, run_dir)
    held = "" if len(test) == len(test_rows) else f" ({len(test)} of them for NLL-test and BLEU)"
    return TextTask(train_rows, test, vocab,
                    f"text corpus {folder}: {len(vocab)} words, {len(train_rows)} training and {len(test_rows)} "
                    f"test sentences{held}, T = {meta['max_len']} "
                    f"({meta['splits']['train']['dropped']['too_long']} long lines dropped)", folder)


def test_sample_size(asked: int, available: int, folder: Path) -> int:
    """How many held-out sentences `data.test_sample` = `asked` means for a split of `available`."""
    if asked == -1:
        return min(available, REFERENCE_ROWS)
    if asked > available:
        raise DataError(f"data.test_sample={asked}: more than the {available} sentences of {folder}/test; "
                        f"give at most {available}, or -1 for the default")
    return asked


def corpus_folder(data: DataConfig, run_dir: Path | None) -> Path:
    """`data.corpus` if it is a prepared folder; a text file is prepared into run_dir/corpus."""
    path = Path(data.corpus)
    if path.is_dir():
        return path
    if not path.is_file():
        raise DataError(f"data.corpus: {path} not found; give a text file (one sentence a line) "
                        f"or a folder made by python run.py prepare")
    if run_dir is None:
        raise DataError(f"data.corpus: {path} is a text file; prepare it first with "
                        f"python run.py prepare --input {path} --out FOLDER")
    out = run_dir / "corpus"
    if not (out / "metadata.json").is_file():
        test = Path(data.test_text) if data.test_text else None
        prepare(PrepareOptions(inputs=(path,), out=out, test=test,
                               test_fraction=None if test else 0.1, vocab_from_test=data.vocab_from_test,
                               progress=False))
    return out


def _keep_vocab(folder: Path, run_dir: Path) -> None:
    """Copy the vocabulary into the run (for `run.py sample`); on resume, check it is the same."""
    mine = run_dir / "vocab.txt"
    if not mine.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / "vocab.txt", mine)
    elif not filecmp.cmp(folder / "vocab.txt", mine, shallow=False):
        raise DataError(f"{folder / 'vocab.txt'} differs from the vocabulary this run was trained with "
                        f"({mine}); resume with the corpus the run started with")
