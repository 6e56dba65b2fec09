"""Your own text: whitespace-tokenized sentences, one a line, prepared into token ids.

`prepare()` streams the text twice. Pass 1 checks every input (UTF-8, not binary, not blank),
counts the words of the training lines, so memory grows with the vocabulary, not with the
corpus, and finds the longest line, whose length sets T unless --max-len does. Pass 2 encodes
line by line into Parquet shards. Both passes walk the lines through one function,
`_sentences`, so they see the same lines and make the same choices. Everything is written
into a temporary sibling folder that is renamed into place at the end: a failed prepare
leaves nothing behind and changes nothing that was there.

The output folder (what `Vocab.load`, `load_metadata`, `read_split` and `shard_paths` read):
    vocab.txt       one token a line, line number = id; ids 0..3 are <pad> <bos> <eos> <unk>
    train/part-00000.parquet, ...   one row a sentence: tokens list<int32> (the word ids,
    test/part-00000.parquet, ...    then <eos>; no padding) and length int32 (with the <eos>)
    metadata.json   vocab_size, max_len (the T of the model) and max_len_from, special ids, the
                    options used and, per split, the lines kept, truncated and dropped (by reason)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from ..runlog import Progress
from .token_file import DataError

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
SPLITS = ("train", "test")
DROP_REASONS = ("empty_line", "too_long")
FORMAT = "seqgan-ray text corpus 1"
SCHEMA = pa.schema([("tokens", pa.list_(pa.int32())), ("length", pa.int32())])
SNIFF_BYTES = 8192    # a NUL byte in a file's first 8 KiB: binary, refused before reading on
BATCH_ROWS = 65536    # rows buffered before they are written as one Parquet row group
FIX_LATIN1 = "convert it first, e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8.txt"


@dataclass(frozen=True)
class PrepareOptions:
    """What `python run.py prepare` was asked for (its --help says what each option does)."""

    inputs: tuple[Path, ...]
    out: Path
    test: Path | None = None
    test_fraction: float | None = None
    seed: int = 0
    min_count: int = 1
    max_vocab: int | None = None  # at most this many words (the most frequent), besides the specials
    split_punctuation: bool = False  # "it's fine." -> it's fine . (default: whitespace only)
    vocab_from_test: bool = False  # count the test split's words too (Texygen's COCO setup)
    lowercase: bool = True
    max_len: int | None = None  # None: what the corpus needs, its longest --input line + <eos>
    long: str = "drop"
    shard_rows: int = 100_000
    force: bool = False
    progress: bool = False

    def check(self) -> None:
        if not self.inputs:
            raise DataError("no --input given; pass one or more text files or folders of .txt files")
        if self.test is not None and self.test_fraction is not None:
            raise DataError("give --test FILE or --test-fraction, not both")
        if self.test_fraction is not None and not 0 < self.test_fraction < 1:
            raise DataError(f"--test-fraction {self.test_fraction}: must be between 0 and 1 "
                            f"(exclusive), e.g. 0.1")
        if self.max_len is not None and self.max_len < 2:
            raise DataError(f"--max-len {self.max_len}: must be at least 2 (one word and <eos>)")
        if self.min_count < 1:
            raise DataError(f"--min-count {self.min_count}: must be at least 1")
        if self.max_vocab is not None and self.max_vocab < 1:
            raise DataError(f"--max-vocab {self.max_vocab}: must be at least 1 (words besides the 4 specials)")
        if self.shard_rows < 1:
            raise DataError(f"--shard-rows {self.shard_rows}: must be at least 1")
        if self.long not in ("drop", "truncate"):
            raise DataError(f"--long {self.long!r}: must be 'drop' or 'truncate'")


@dataclass
class SplitStats:
    """What happened to the lines of one split; `kept` includes the `truncated` ones."""

    lines: int = 0
    kept: int = 0
    truncated: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason (DROP_REASONS) -> lines
    longest_words: int = 0
    tokens: int = 0      # written, each sentence's <eos> included
    unk_tokens: int = 0
    shards: int = 0

    def as_dict(self) -> dict:
        return {"lines": self.lines, "kept": self.kept, "truncated": self.truncated,
                "dropped": {r: self.dropped[r] for r in DROP_REASONS},
                "longest_words": self.longest_words, "tokens": self.tokens,
                "unk_tokens": self.unk_tokens, "shards": self.shards}


class Source(NamedTuple):
    path: Path
    split: str | None  # "train" or "test"; None: train text with a test fraction carved per line


# ----------------------------------------------------------------------------- prepare


def prepare(opts: PrepareOptions) -> dict:
    """Check the inputs, build the vocabulary, write shards and metadata; return the metadata."""
    opts.check()
    sources = find_sources(opts)
    out = Path(opts.out)
    _check_out(out, sources, force=opts.force)
    counts: Counter[str] = Counter()
    stats = {s: SplitStats() for s in SPLITS}
    for split, words in _sentences(sources, opts, stats, "prepare 1/2: check, count words"):
        if split == "train" or opts.vocab_from_test:
            counts.update(words)
    max_len_from = "--max-len" if opts.max_len is not None else "longest_line"
    if opts.max_len is None:  # T: what the longest --input line needs; pass 2 writes with it
        opts = dataclasses.replace(opts, max_len=_longest_input_line(stats, opts) + 1)
    _check_kept(stats, opts, max_len_from)
    vocab = Vocab(build_vocab(counts, opts.min_count, opts.max_vocab), lowercase=opts.lowercase,
                  split_punctuation=opts.split_punctuation)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.prepare-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()  # not tempfile.mkdtemp: its folder is private (0700), this one follows the umask
    try:
        meta = _write(tmp, vocab, sources, opts, words_seen=len(counts), max_len_from=max_len_from)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def find_sources(opts: PrepareOptions) -> list[Source]:
    """The input files in order (folders: their .txt files, sorted), each checked not binary."""
    train = _expand(opts.inputs, "--input")
    test = _expand([opts.test], "--test") if opts.test is not None else []
    both = {p.resolve() for p in train} & {p.resolve() for p in test}
    if both:
        raise DataError(f"{next(iter(both))}: given as --input and as --test; held-out text "
                        f"must not be trained on")
    carve = opts.test_fraction is not None
    return [Source(p, None if carve else "train") for p in train] + [Source(p, "test") for p in test]


def build_vocab(counts: Counter[str], min_count: int, max_words: int | None = None) -> list[str]:
    """Specials, then words seen >= min_count times by descending count, ties alphabetical; the
    first `max_words` of them when given."""
    words = [w for w, c in counts.items() if c >= min_count and w not in SPECIALS]
    return [*SPECIALS, *sorted(words, key=lambda w: (-counts[w], w))[:max_words]]


PUNCTUATION = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")  # words (with inner apostrophes), or one mark each


def tokenize(text: str, *, split_punctuation: bool = False) -> list[str]:
    """A line's words: split on whitespace, and with `split_punctuation` each punctuation mark a
    word of its own ("it's fine." -> it's, fine, .)."""
    return PUNCTUATION.findall(text) if split_punctuation else text.split()


def held_out(words: Sequence[str], *, seed: int, fraction: float) -> bool:
    """Whether a training line goes to the test split instead: a seeded hash of its words.

    A hash, not an RNG: the choice needs no state, is the same in both passes and in any
    order, and puts every copy of a duplicated sentence on the same side of the split.
    """
    digest = hashlib.blake2b(f"{seed}\0{' '.join(words)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") < fraction * 2**64


def _expand(paths: Iterable[Path], flag: str) -> list[Path]:
    files: dict[Path, Path] = {}  # resolved -> as given; a file given twice is read once
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not found:
                raise DataError(f"{path}: folder has no .txt files; pass the text files themselves "
                                f"with {flag}")
        elif path.is_file():
            found = [path]
        else:
            raise DataError(f"{path}: no such file or folder; check the {flag} path")
        for p in found:
            _check_not_binary(p)
            files.setdefault(p.resolve(), p)
    return list(files.values())


def _check_not_binary(path: Path) -> None:
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file; remove it from the inputs")
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    nul = head.find(b"\0")
    if nul >= 0:
        raise DataError(f"{path}: binary file (NUL byte at offset {nul}); expected "
                        f"UTF-8 text, one sentence a line (UTF-16 text: iconv -f utf-16 -t utf-8)")


def _check_out(out: Path, sources: list[Source], *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise DataError(f"--out {out}: folder exists and is not empty; choose another --out, "
                        f"or pass --force to replace it")
    for src in sources:
        if out.resolve() in src.path.resolve().parents:
            raise DataError(f"{src.path}: input lies inside --out {out}, which prepare replaces; "
                            f"choose another --out")


def _lines(path: Path, *, lowercase: bool, split_punctuation: bool = False) -> Iterator[tuple[int, list[str], int]]:
    """(line number, words, bytes read) for every line, each checked to be UTF-8 text."""
    with open(path, "rb") as f:
        read = 0
        for lineno, raw in enumerate(f, 1):
            read += len(raw)
            if b"\0" in raw:
                raise DataError(f"{path}:{lineno}: NUL byte, so a binary file; expected UTF-8 text, "
                                f"one sentence a line")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
                                f"{exc.start} of the line); {FIX_LATIN1}") from None
            if lineno == 1:
                text = text.removeprefix("\ufeff")  # a byte-order mark is not part of a word
            yield lineno, tokenize(text.lower() if lowercase else text, split_punctuation=split_punctuation), read


def _sentences(sources: list[Source], opts: PrepareOptions, stats: dict[str, SplitStats],
               label: str) -> Iterator[tuple[str, list[str]]]:
    """(split, words) for every line kept, at most max_len - 1 words; every line counted in stats.
    With max_len None (pass 1 when T is the corpus's), no --input line is too long, and a --test
    line is too long when it is longer than the longest --input line."""
    progress = _Throttled(Progress(label, sum(s.path.stat().st_size for s in sources),
                                   enabled=opts.progress))
    done = 0
    longest_input = 0  # words; every --input source comes before the --test ones (find_sources)
    for src in sources:
        blank = True
        for lineno, words, read in _lines(src.path, lowercase=opts.lowercase,
                                          split_punctuation=opts.split_punctuation):
            progress.update(done + read)
            if not words:
                split = src.split or "train"
                stats[split].lines += 1
                stats[split].dropped["empty_line"] += 1
                continue
            blank = False
            carved = src.split is None and held_out(words, seed=opts.seed, fraction=opts.test_fraction)
            split = src.split or ("test" if carved else "train")
            s = stats[split]
            s.lines += 1
            s.longest_words = max(s.longest_words, len(words))
            if src.split != "test":
                longest_input = max(longest_input, len(words))
            limit = opts.max_len - 1 if opts.max_len is not None else longest_input  # T - 1 words
            if len(words) > limit:
                if opts.long == "drop":
                    s.dropped["too_long"] += 1
                    continue
                words = words[:limit]
                s.truncated += 1
            s.kept += 1
            yield split, words
        if blank:
            raise DataError(f"{src.path}: no text (every line is blank); remove it from the inputs")
        done += src.path.stat().st_size
    progress.update(done)


def _longest_input_line(stats: dict[str, SplitStats], opts: PrepareOptions) -> int:
    """Words in the longest --input line: the train split's, and the test split's when
    --test-fraction carved it from --input (so no carved test line is too long either)."""
    return max(stats["train"].longest_words,
               stats["test"].longest_words if opts.test_fraction is not None else 0)


def _check_kept(stats: dict[str, SplitStats], opts: PrepareOptions, max_len_from: str) -> None:
    """Refuse, before anything is written, a split that would be empty."""
    wanted = ["train"] + (["test"] if opts.test is not None or opts.test_fraction else [])
    for split in wanted:
        s = stats[split]
        if s.kept:
            continue
        if s.dropped["too_long"]:
            if max_len_from == "--max-len":
                raise DataError(f"{split}: all {s.dropped['too_long']} sentences are longer than "
                                f"--max-len {opts.max_len} allows ({opts.max_len - 1} words + <eos>; the "
                                f"longest has {s.longest_words}); raise --max-len or pass --long truncate")
            raise DataError(f"{split}: all {s.dropped['too_long']} sentences are longer than the "
                            f"longest training line ({opts.max_len - 1} words + <eos>: T = {opts.max_len}; "
                            f"the longest has {s.longest_words}); pass --max-len {s.longest_words + 1} "
                            f"or --long truncate")
        lines = stats["train"].lines + stats["test"].lines
        raise DataError(f"{split}: --test-fraction {opts.test_fraction} left no sentences for it "
                        f"out of {lines} lines; pick a fraction nearer 0.5 or pass --test FILE")


def _write(tmp: Path, vocab: Vocab, sources: list[Source], opts: PrepareOptions, *,
           words_seen: int, max_len_from: str) -> dict:
    """Pass 2: vocab.txt, the shards of both splits, then metadata.json, all into `tmp`."""
    (tmp / "vocab.txt").write_text("".join(w + "\n" for w in vocab.words), encoding="utf-8")
    stats = {s: SplitStats() for s in SPLITS}
    writers = {s: ShardWriter(tmp / s, shard_rows=opts.shard_rows) for s in SPLITS}
    try:
        for split, words in _sentences(sources, opts, stats, "prepare 2/2: write shards"):
            ids = [vocab.ids.get(w, UNK) for w in words] + [EOS]
            stats[split].tokens += len(ids)
            stats[split].unk_tokens += ids.count(UNK)
            writers[split].add(ids)
    finally:
        for split, writer in writers.items():
            stats[split].shards = writer.close()
    meta = {
        "format": FORMAT,
        "vocab_size": len(vocab),
        "max_len": opts.max_len,
        "max_len_from": max_len_from,  # "--max-len", or "longest_line": the longest --input line + 1
        "special_ids": {"pad": PAD, "bos": BOS, "eos": EOS, "unk": UNK},
        "lowercase": opts.lowercase,
        "split_punctuation": opts.split_punctuation,
        "max_vocab": opts.max_vocab,
        "min_count": opts.min_count,
        "vocab_from_test": opts.vocab_from_test,
        "words_seen": words_seen,  # distinct words in the kept training lines, before min_count
        "long": opts.long,
        "shard_rows": opts.shard_rows,
        "test_from": "file" if opts.test else "fraction" if opts.test_fraction else "none",
        "test_fraction": opts.test_fraction,
        "seed": opts.seed,
        "sources": {"train": [str(s.path.resolve()) for s in sources if s.split != "test"],
                    "test": [str(s.path.resolve()) for s in sources if s.split == "test"]},
        "splits": {s: stats[s].as_dict() for s in SPLITS},
    }
    (tmp / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder to `out`; an old `out` (only with --force) is removed after."""
    old = None
    if out.exists():
        old = out.with_name(f"{tmp.name}.old")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old)


class ShardWriter:
    """Rows of token ids into part-00000.parquet, part-00001.parquet, ..., `shard_rows` a file."""

    def __init__(self, folder: Path, *, shard_rows: int):
        folder.mkdir()
        self.folder, self.shard_rows = folder, shard_rows
        self.shards, self.rows_in_shard = 0, 0
        self.writer: pq.ParquetWriter | None = None
        self.values: list[int] = []
        self.lengths: list[int] = []

    def add(self, ids: list[int]) -> None:
        self.values += ids
        self.lengths.append(len(ids))
        if len(self.lengths) >= min(BATCH_ROWS, self.shard_rows - self.rows_in_shard):
            self._flush()

    def close(self) -> int:
        """Write what is buffered, close the last shard; return the number of shards written."""
        self._flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.shards += 1
        return self.shards

    def _flush(self) -> None:
        if not self.lengths:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.folder / f"part-{self.shards:05d}.parquet", SCHEMA)
        lengths = np.asarray(self.lengths, dtype=np.int32)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        tokens = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.asarray(self.values, np.int32)))
        self.writer.write_table(pa.Table.from_arrays([tokens, pa.array(lengths)], schema=SCHEMA))
        self.rows_in_shard += len(lengths)
        self.values, self.lengths = [], []
        if self.rows_in_shard >= self.shard_rows:
            self.writer.close()
            self.writer, self.rows_in_shard = None, 0
            self.shards += 1


class _Throttled:
    """Progress by bytes read, redrawn at most twice a second (a line each time off a terminal)."""

    def __init__(self, progress: Progress, every_s: float = 0.5):
        self.progress, self.every_s = progress, every_s
        self.last, self.last_done = time.perf_counter(), 0

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if done != self.last_done and (done >= self.progress.total or now - self.last >= self.every_s):
            self.last, self.last_done = now, done
            self.progress.update(done, f"bytes ({done / max(self.progress.total, 1):.0%})")


def summary(meta: dict, out: Path) -> list[str]:
    """The lines `run.py prepare` prints at the end: per split what was kept, then where."""
    T = meta["max_len"]
    cap = f", the {meta['max_vocab']} most frequent" if meta.get("max_vocab") else ""
    lines = [f"vocabulary: {meta['vocab_size']} tokens (4 specials + words seen >= {meta['min_count']} times{cap})",
             f"T = {T}, as --max-len says" if meta.get("max_len_from") != "longest_line" else
             f"T = {T}: the longest {'--input' if meta['test_from'] == 'fraction' else 'training'} line, "
             f"{T - 1} words, + <eos>"]
    for split in SPLITS:
        s = meta["splits"][split]
        unk = s["unk_tokens"] / max(s["tokens"], 1)
        lines.append(f"{split}: {s['kept']} sentences in {s['shards']} shard(s), {s['truncated']} "
                     f"truncated, {sum(s['dropped'].values())} dropped; {unk:.2%} of tokens <unk>")
    lines.append(f"written to {out}")
    return lines


def warnings(meta: dict) -> list[str]:
    """One counted line per split that skipped lines (never one line per skipped line)."""
    lines = []
    for split in SPLITS:
        s = meta["splits"][split]
        empty, long = s["dropped"]["empty_line"], s["dropped"]["too_long"]
        if not empty + long:
            continue
        why = [f"{empty} empty"] if empty else []
        if long:
            fix = ("raise --max-len or pass --long truncate" if meta.get("max_len_from") != "longest_line"
                   else f"pass --max-len {s['longest_words'] + 1} or --long truncate")
            why.append(f"{long} longer than {meta['max_len'] - 1} words (the longest has "
                       f"{s['longest_words']}; {fix})")
        lines.append(f"warning: {split}: skipped {empty + long} of {s['lines']} lines: " + ", ".join(why))
    if not meta["splits"].get("test", {}).get("kept"):
        lines.append("warning: no test split: training on this folder needs one (NLL-test and BLEU are "
                     "measured on it); prepare again with --test FILE or --test-fraction F")
    return lines


# ----------------------------------------------------------------------------- reading side


class Vocab:
    """Token <-> id of a prepared corpus; id = line number of vocab.txt, 0..3 the specials.

    Words of the text that spell a special (`<eos>`, `<pad>`, ...) encode as <unk>, so no
    sentence ends early; `<unk>` in the text (as in PTB) is the <unk> id.
    """

    def __init__(self, words: Sequence[str], *, lowercase: bool = True, split_punctuation: bool = False):
        if tuple(words[:len(SPECIALS)]) != SPECIALS:
            raise DataError(f"a vocabulary must start with {' '.join(SPECIALS)}, got {list(words[:4])}")
        self.words = list(words)
        self.lowercase, self.split_punctuation = lowercase, split_punctuation
        self.ids = {w: i for i, w in enumerate(self.words) if i >= UNK}

    @classmethod
    def load(cls, corpus_dir: str | Path) -> Vocab:
        meta = load_metadata(corpus_dir)
        path = Path(corpus_dir) / "vocab.txt"
        if not path.is_file():
            raise DataError(f"{path}: not found; prepare the corpus again with python run.py prepare")
        words = path.read_text(encoding="utf-8").split("\n")[:-1]
        if len(words) != meta["vocab_size"]:
            raise DataError(f"{path}: {len(words)} tokens, but metadata.json says vocab_size "
                            f"{meta['vocab_size']}; prepare the corpus again")
        return cls(words, lowercase=meta["lowercase"], split_punctuation=meta.get("split_punctuation", False))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words: str | Iterable[str]) -> list[int]:
        """Ids of `words` (a string is tokenized as the corpus was), no <eos> added; unknown -> UNK."""
        if isinstance(words, str):
            words = tokenize(words, split_punctuation=self.split_punctuation)
        return [self.ids.get(w.lower() if self.lowercase else w, UNK) for w in words]

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """The words of `ids` joined by spaces, up to the first <eos>; <pad> and <bos> skipped."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        words = []
        for i in ids:
            if i == EOS:
                break
            if not 0 <= i < len(self.words):
                raise ValueError(f"token id {i} outside the vocabulary [0, {len(self.words)})")
            if i not in (PAD, BOS):
                words.append(self.words[i])
        return " ".join(words)


def load_metadata(corpus_dir: str | Path) -> dict:
    """metadata.json of a prepared corpus; a DataError naming what is missing if it is not one."""
    corpus_dir = Path(corpus_dir)
    how = f"make one with: python run.py prepare --input TEXT --out {corpus_dir}"
    if not corpus_dir.is_dir():
        raise DataError(f"{corpus_dir}: no such folder; {how}")
    path = corpus_dir / "metadata.json"
    if not path.is_file():
        raise DataError(f"{path}: not found, so {corpus_dir} is not a prepared corpus; {how}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); prepare the corpus again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path}: not written by run.py prepare (format is not {FORMAT!r}); {how}")
    return meta


def shard_paths(corpus_dir: str | Path, split: str) -> list[str]:
    """The Parquet shards of `split` in order, for `ray.data.read_parquet(paths)`."""
    meta = load_metadata(corpus_dir)
    if split not in meta["splits"]:
        raise DataError(f"{corpus_dir}: no split {split!r}; the splits are {', '.join(meta['splits'])}")
    paths = sorted(str(p) for p in (Path(corpus_dir) / split).glob("part-*.parquet"))
    if len(paths) != meta["splits"][split]["shards"]:
        raise DataError(f"{Path(corpus_dir) / split}: {len(paths)} shard files, but metadata.json "
                        f"lists {meta['splits'][split]['shards']}; prepare the corpus again")
    return paths


def read_split(corpus_dir: str | Path, split: str, max_len: int | None = None) -> torch.Tensor:
    """Every sentence of `split` as a (S, T) long tensor, right-padded with PAD.

    T is `max_len`, by default the corpus's own; a sentence longer than T is an error.
    """
    meta = load_metadata(corpus_dir)
    T = meta["max_len"] if max_len is None else max_len
    blocks = [read_shard(Path(p), T, meta["vocab_size"]) for p in shard_paths(corpus_dir, split)]
    if not blocks:
        raise DataError(f"{corpus_dir}: split {split!r} has no sentences; prepare with --test FILE "
                        f"or --test-fraction to have a test split")
    return torch.from_numpy(np.concatenate(blocks))  # (S, T)


def read_shard(path: Path, T: int, vocab_size: int) -> np.ndarray:
    """One shard's rows as (S, T) PAD-padded int64 ids, each checked: at most T tokens, ids inside
    the vocabulary, ending in <eos>. A DataError naming the shard and the row otherwise."""
    try:
        tokens = pq.read_table(path, columns=["tokens"]).column("tokens").combine_chunks()
    except (pa.ArrowException, OSError, KeyError) as exc:
        raise DataError(f"{path}: cannot read the shard ({exc}); prepare the corpus again") from None
    if tokens.null_count:
        raise DataError(f"{path}: {tokens.null_count} null rows; prepare the corpus again")
    lengths = pc.list_value_length(tokens).to_numpy(zero_copy_only=False).astype(np.int64)  # (S,)
    values = tokens.flatten().to_numpy(zero_copy_only=False)
    if len(lengths) and lengths.max() > T:
        row = int(lengths.argmax())
        raise DataError(f"{path}: row {row} has {lengths[row]} tokens, more than max_len {T}; "
                        f"use max_len >= {lengths[row]} or prepare again with --max-len {T} "
                        f"--long truncate")
    if len(values) and not (0 <= values.min() and values.max() < vocab_size):
        bad = int(values.max() if values.max() >= vocab_size else values.min())
        raise DataError(f"{path}: token id {bad} outside the vocabulary [0, {vocab_size}) of metadata.json; "
                        f"the shard belongs to another corpus: prepare the corpus again")
    ends = np.cumsum(lengths)
    unended = np.flatnonzero((lengths == 0) | (values[np.maximum(ends - 1, 0)] != EOS)) if len(values) else []
    if len(unended):
        raise DataError(f"{path}: row {unended[0]} does not end with <eos> (id {EOS}); prepare the corpus again")
    return _pad(lengths, values, T)


def pad_tokens(tokens: pa.Array | pa.ChunkedArray, T: int) -> np.ndarray:
    """A `tokens` column (list<int32>, e.g. a batch from Ray Data) as (S, T) int64, PAD-padded."""
    if isinstance(tokens, pa.ChunkedArray):
        tokens = tokens.combine_chunks()
    lengths = pc.list_value_length(tokens).to_numpy(zero_copy_only=False).astype(np.int64)
    return _pad(lengths, tokens.flatten().to_numpy(zero_copy_only=False), T)


def _pad(lengths: np.ndarray, values: np.ndarray, T: int) -> np.ndarray:
    out = np.full((len(lengths), T), PAD, dtype=np.int64)  # (S, T)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(len(values)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = values
    return out
