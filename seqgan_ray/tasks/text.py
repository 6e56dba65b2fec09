"""What the generator learns and how it is scored: the synthetic task or your own text.

`load_task(cfg.data, run_dir)` returns a `SyntheticTask` (tasks/synthetic.py) or a `TextTask`. Both
give the training sequences (`real`), a one-line `source`, the `metric` reported first, an
`evaluate(samples, nll)` that turns generator samples into metrics, and `write_samples`.

A text corpus is a folder made by `python run.py prepare` (corpus.py), or a text file that
is prepared into `<run_dir>/corpus` on the run's first start. Its metadata fixes the model's
vocabulary size, sequence length and end token, so those keys of `data` are set from it.
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..config import DataConfig
from .bleu import ReferenceIndex, self_bleu
from .corpus import BOS, EOS, UNK, PrepareOptions, Vocab, load_metadata, prepare, read_split
from .synthetic import SyntheticTask
from .synthetic import load_task as load_synthetic_task
from .token_file import DataError

BLEU_ORDERS = (2, 3, 4, 5)


@dataclass
class TextTask:
    real: torch.Tensor   # (S, T) training sentences: ids, <eos>, then PAD
    test: torch.Tensor   # (S', T) held-out sentences, the same way
    vocab: Vocab
    source: str
    folder: Path         # the prepared corpus (its Parquet shards feed Ray Train pretraining)
    metric = "eval/nll_test"

    def __post_init__(self):
        # BLEU references: each sentence as its id strings up to <eos>. An <unk> in a reference
        # stands for a word the generator cannot emit, so it gets a string nothing matches.
        self._refs = ReferenceIndex([_words(row, unk_as="<unk-ref>") for row in self.test],
                                    max(BLEU_ORDERS))

    def evaluate(self, samples: torch.Tensor, nll: Callable[[torch.Tensor], float]) -> dict[str, float]:
        """NLL-test (the generator's NLL of the held-out text), BLEU-2..5 of `samples` against
        the held-out text and Self-BLEU-2..5 among `samples` (Texygen's definitions)."""
        hyps = [_words(row) for row in samples]
        metrics = {"eval/nll_test": nll(self.test)}
        metrics.update({f"eval/bleu{n}": v for n, v in self._refs.bleu(hyps).items() if n in BLEU_ORDERS})
        metrics.update({f"eval/self_bleu{n}": v for n, v in self_bleu(hyps, max(BLEU_ORDERS)).items()
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


def load_task(data: DataConfig, run_dir: Path | None = None) -> SyntheticTask | TextTask:
    """The synthetic task, or the text corpus named by `data.corpus` (setting data's keys)."""
    if not data.corpus:
        return load_synthetic_task(data)
    folder = corpus_folder(data, run_dir)
    meta = load_metadata(folder)
    data.vocab_size, data.seq_len = meta["vocab_size"], meta["max_len"]
    data.start_token, data.eos_token = BOS, EOS
    vocab = Vocab.load(folder)
    if run_dir is not None:
        _keep_vocab(folder, run_dir)
    real, test = read_split(folder, "train"), read_split(folder, "test")
    for name, seqs in (("train", real), ("test", test)):
        if not (seqs == EOS).any(dim=1).all():
            raise DataError(f"{folder}/{name}: a sentence without <eos>; prepare the corpus again")
    splits = meta["splits"]
    return TextTask(real, test, vocab, f"text corpus {folder}: {len(vocab)} words, {len(real)} training "
                                       f"and {len(test)} test sentences, T = {meta['max_len']} "
                                       f"({splits['train']['dropped']['too_long']} long lines dropped)",
                    folder)


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
