"""One split of a prepared corpus, read a few rows at a time: no process holds the corpus.

The adversarial phase needs rows in three ways: a uniform sample of the training split as
large as the negatives for every discriminator round, the batches of an MLE epoch in a
shuffled order, and a fixed, seeded sample of the test split for NLL-test and BLEU. Parquet
gives none of them cheaply (it reads whole row groups), so on first use the split's shards
are written once, shard by shard, into a fixed-width token file beside them,

    <corpus>/cache/<split>-T<T>.npy   (S, T) token ids, PAD-padded, uint16 (int32 for V > 65,536)
    <corpus>/cache/<split>-T<T>.json  the shards it was made from: names, sizes, mtimes

and read with positioned reads (no memory map), so a row costs T·2 bytes of disk and nothing of
the process's memory until it is taken, and rows taken are the process's only copy of them. A
corpus prepared again (or a shard changed) has other sizes or times, and the cache is rebuilt.
Opening checks every shard against metadata.json first (present, a readable Parquet footer, the
schema, the row count); building the cache checks every row (corpus.read_shard: length, token
ids inside the vocabulary, <eos>), so a broken corpus is refused before any training, naming
the file.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .corpus import SCHEMA, load_metadata, read_shard
from .token_file import DataError

BLOCK_ROWS = 1024    # an MLE epoch visits the split in blocks of this many rows, in a shuffled order,
BUFFER_BLOCKS = 16   # and shuffles the rows within each run of this many blocks (16k rows)


class SplitReader:
    """The rows of one split of the prepared corpus `corpus_dir`, each of length `T`."""

    def __init__(self, corpus_dir: str | Path, split: str, T: int | None = None):
        self.folder, self.split = Path(corpus_dir), split
        meta = load_metadata(self.folder)
        self.T = meta["max_len"] if T is None else T
        self.vocab_size = meta["vocab_size"]
        if split not in meta["splits"]:
            raise DataError(f"{self.folder}: no split {split!r}; the splits are {', '.join(meta['splits'])}")
        self.paths = check_shards(self.folder, split, meta)
        self.rows = self._open_cache()

    def __len__(self) -> int:
        return len(self.rows)

    # ------------------------------------------------------------------ reading

    def take(self, index: np.ndarray) -> torch.Tensor:
        """The rows at `index` (n,), in that order, as an (n, T) long tensor."""
        order = np.argsort(index, kind="stable")  # read in file order, hand back in the asked order
        out = np.empty((len(index), self.T), dtype=np.int64)
        out[order] = self.rows.read(np.asarray(index)[order])
        return torch.from_numpy(out)

    def sample(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """`n` distinct rows drawn uniformly with `rng`, as an (n, T) tensor; memory O(n)."""
        return self.take(distinct_indices(len(self), n, rng))

    def fixed_sample(self, n: int, seed: int) -> torch.Tensor:
        """`n` rows chosen by `seed` alone, in file order: the same rows on every call and
        resume (the whole split, in order, when `n` is its size)."""
        if n >= len(self):
            return self.take(np.arange(len(self)))
        return self.take(np.sort(distinct_indices(len(self), n, torch.Generator().manual_seed(seed))))

    def batches(self, batch_size: int, rng: torch.Generator, *, shuffle: bool = True) -> Iterator[torch.Tensor]:
        """One MLE epoch: every full batch (batch_size, T) of the split, the last partial one
        dropped. Shuffled: blocks of BLOCK_ROWS rows in an order drawn with `rng`, the rows of
        every BUFFER_BLOCKS blocks shuffled together, so memory stays one buffer whatever the
        corpus's size. Not shuffled: the split's own order."""
        S = len(self)
        starts = np.arange(0, S, BLOCK_ROWS)
        if shuffle:
            starts = starts[torch.randperm(len(starts), generator=rng).numpy()]
        carry = torch.empty((0, self.T), dtype=torch.long)
        for i in range(0, len(starts), BUFFER_BLOCKS):
            rows = np.concatenate([np.arange(s, min(s + BLOCK_ROWS, S)) for s in starts[i:i + BUFFER_BLOCKS]])
            buf = torch.from_numpy(self.rows.read(np.sort(rows)))
            if shuffle:
                buf = buf[torch.randperm(len(buf), generator=rng)]
            buf = torch.cat([carry, buf])
            full = len(buf) // batch_size * batch_size
            yield from buf[:full].split(batch_size)
            carry = buf[full:]

    # ------------------------------------------------------------------ the cache

    def _open_cache(self) -> TokenFile:
        cache = self.folder / "cache"
        stem = f"{self.split}-T{self.T}"
        data, about = cache / f"{stem}.npy", cache / f"{stem}.json"
        made_from = _fingerprint(self.paths)
        if about.is_file() and data.is_file() and _read_json(about) == made_from:
            try:
                return TokenFile(data)
            except DataError:  # a cache cut short (a full disk, a copy): made again below
                pass
        self._build(cache, data, about, made_from)
        return TokenFile(data)

    def _build(self, cache: Path, data: Path, about: Path, made_from: dict) -> None:
        """Write the split's rows into `data` shard by shard (one shard in memory at a time),
        into a temporary name that is renamed into place: a reader never sees half a file,
        and two processes building at once each finish their own."""
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in self.paths)
        dtype = np.uint16 if self.vocab_size <= 2**16 else np.int32
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                  "shape": (rows, self.T)}
        try:
            cache.mkdir(exist_ok=True)
            tmp = cache / f".{data.name}.{os.getpid()}-{secrets.token_hex(4)}"
            out = open(tmp, "wb")
        except OSError as exc:
            raise DataError(f"{cache}: cannot write the token cache of split {self.split!r} ({exc.strerror}); "
                            f"make the corpus folder writable, or copy it somewhere writable") from None
        try:
            with out:
                np.lib.format.write_array_header_2_0(out, header)
                for path in self.paths:
                    out.write(read_shard(Path(path), self.T, self.vocab_size).astype(dtype).tobytes())
            os.replace(tmp, data)
            about.write_text(json.dumps(made_from, indent=1) + "\n")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


class TokenFile:
    """An (S, T) .npy file of token ids read by rows with os.pread: a run of consecutive rows is
    one read, and nothing is mapped, so the process holds only the rows it asked for."""

    def __init__(self, path: Path):
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, self.dtype = read_header(f)
            self.offset = f.tell()
        self.shape = shape
        self.row_bytes = shape[1] * self.dtype.itemsize if len(shape) == 2 else 0
        if fortran or len(shape) != 2 or path.stat().st_size != self.offset + shape[0] * self.row_bytes:
            raise DataError(f"{path}: not a whole token cache; delete it and run again")
        self.fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows `rows` (sorted ascending) as an (n, T) int64 array."""
        out = np.empty((len(rows), self.shape[1]), dtype=np.int64)
        if not len(rows):
            return out
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for lo, hi in zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [len(rows)]])):
            n = int(hi - lo)
            raw = os.pread(self.fd, n * self.row_bytes, self.offset + int(rows[lo]) * self.row_bytes)
            out[lo:hi] = np.frombuffer(raw, dtype=self.dtype).reshape(n, self.shape[1])
        return out

    def __del__(self):
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)


def distinct_indices(S: int, n: int, rng: torch.Generator) -> np.ndarray:
    """`n` distinct integers of [0, S), uniformly, in draw order; memory O(n), not O(S)."""
    if not 0 < n <= S:
        raise ValueError(f"cannot draw {n} distinct rows of {S}")
    if 2 * n >= S:
        return torch.randperm(S, generator=rng)[:n].numpy()
    picked = np.empty(0, dtype=np.int64)
    while len(picked) < n:  # draws with repeats, keeping each row's first draw; ~1 round
        draws = np.concatenate([picked, torch.randint(S, (2 * (n - len(picked)),), generator=rng).numpy()])
        _, first = np.unique(draws, return_index=True)
        picked = draws[np.sort(first)]
    return picked[:n]


def check_shards(folder: Path, split: str, meta: dict) -> list[str]:
    """The split's shard paths, each checked against metadata.json without reading its rows:
    every listed shard present, a readable Parquet footer, the schema prepare writes, and the
    row count metadata.json gives. A DataError naming the file otherwise."""
    again = "prepare the corpus again with python run.py prepare"
    want = meta["splits"][split]
    paths = [folder / split / f"part-{i:05d}.parquet" for i in range(want["shards"])]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{missing[0]}: missing ({len(missing)} of the {len(paths)} shards metadata.json "
                        f"lists for split {split!r}); {again}")
    rows = 0
    for path in paths:
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file, truncated or damaged ({exc}); {again}") from None
        schema = pf.schema_arrow
        if not schema.equals(SCHEMA):
            raise DataError(f"{path}: schema {schema.to_string(show_schema_metadata=False)!r} does not match "
                            f"the corpus format (tokens: list<int32>, length: int32); {again}")
        rows += pf.metadata.num_rows
    if rows != want["kept"]:
        raise DataError(f"{folder / split}: the shards hold {rows} sentences, metadata.json says {want['kept']}; "
                        f"{again}")
    return [str(p) for p in paths]


def _fingerprint(paths: list[str]) -> dict:
    return {"shards": [[Path(p).name, os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in paths]}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError):
        return None

