"""Token files: one sequence per line, space-separated integer ids (the reference code's format)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class DataError(ValueError):
    """A data file that cannot be used; the message names the file, the line and the fix."""


def read_token_file(path: str | Path, *, vocab_size: int, seq_len: int) -> torch.Tensor:
    """Read `path` into a (S, T) long tensor, checking every line's length and every id's range."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise DataError(f"{path}:{lineno}: not UTF-8 text; expected space-separated token ids") from None
            if not text:
                continue
            try:
                ids = [int(x) for x in text.split()]
            except ValueError:
                raise DataError(f"{path}:{lineno}: expected space-separated integer token ids, "
                                f"got {text[:40]!r}") from None
            if len(ids) != seq_len:
                raise DataError(f"{path}:{lineno}: {len(ids)} tokens, but data.seq_len is {seq_len}")
            bad = [i for i in ids if not 0 <= i < vocab_size]
            if bad:
                raise DataError(f"{path}:{lineno}: token id {bad[0]} outside [0, {vocab_size}) "
                                f"(data.vocab_size)")
            rows.append(ids)
    if not rows:
        raise DataError(f"{path}: no sequences in the file")
    return torch.from_numpy(np.asarray(rows, dtype=np.int64))


def write_token_file(path: str | Path, seqs: torch.Tensor) -> None:
    with open(path, "w") as f:
        for row in seqs.tolist():
            f.write(" ".join(map(str, row)) + "\n")
