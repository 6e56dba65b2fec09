"""The synthetic task's oracle: the paper's "target LSTM", or a seeded one of the same shape.

The paper's oracle is a pickle of 15 float32 arrays (../shared/data/SOURCES.md): embeddings
(V, E), then Wi, Ui, bi, Wf, Uf, bf, Wog, Uog, bog, Wc, Uc, bc, then Wo (H, V), bo (V,).
It is read from `data.oracle_dir`, never copied into the project. Without it we build an
oracle the way the paper built its own: every parameter drawn N(0, 1), here from a seed.
"""

from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import DataConfig
from ..models.policy import LSTMPolicy
from .token_file import DataError, read_token_file, write_token_file

PARAMS_FILE = "target_params.pkl"
DATA_FILE = "real_data.txt"
ORIGIN = ("the SeqGAN paper's oracle (LantaoYu/SeqGAN, save/target_params_py3.pkl); "
          "put it there or set data.oracle_dir")


TEST_SEED = 2017  # the held-out oracle samples of NLL-test


@dataclass
class SyntheticTask:
    oracle: LSTMPolicy
    real: torch.Tensor  # (S, T) training sequences
    source: str         # one line saying where the oracle and data came from
    seeded: bool = False  # a seeded oracle (no published parameters): saved with each run
    metric = "eval/oracle_nll"  # what evaluation reports first and sweeps optimise by default
    train_rows = None           # the training set is small: every role holds `real` whole

    @property
    def num_train(self) -> int:
        return len(self.real)

    @cached_property
    def scorer(self) -> LSTMPolicy:
        """The oracle on the GPU when this process has one, for NLL-oracle: scoring 10k samples
        took 1.3-2 s on an H100 machine's CPU, a cost every evaluation paid. (A copy: the
        held-out samples and the training data are still drawn on the CPU, as before.)"""
        if not torch.cuda.is_available():
            return self.oracle
        return copy.deepcopy(self.oracle).to("cuda")

    @cached_property
    def test(self) -> torch.Tensor:
        """Held out: fresh oracle samples, as many as the training sequences, always the same;
        drawn on first use (an evaluation), not by every process that loads the task."""
        return self.oracle.sample(len(self.real), generator=torch.Generator().manual_seed(TEST_SEED))

    def evaluate(self, samples: torch.Tensor, nll: Callable[[torch.Tensor], float]) -> dict[str, float]:
        """NLL-oracle: the oracle's mean per-token NLL of the generator's `samples` (S, T), with
        the half-width of its 95% confidence interval over the S independent samples; and
        NLL-test: the generator's NLL of held-out oracle samples, which rises when it covers
        less of the oracle's sequences (a collapse that a low NLL-oracle would hide)."""
        scorer = self.scorer
        per_seq = scorer.sequence_nll(samples.to(scorer.W.device)).cpu()  # (S,) mean NLL per token
        half = 1.96 * per_seq.std().item() / len(per_seq) ** 0.5 if len(per_seq) > 1 else float("nan")
        return {"eval/oracle_nll": per_seq.mean().item(), "eval/oracle_nll_ci95": half,
                "eval/nll_test": nll(self.test)}

    def write_samples(self, path: Path, samples: torch.Tensor) -> None:
        write_token_file(path, samples)

    def save_oracle(self, folder: Path) -> None:
        """The oracle and the training data in the paper's files (`PARAMS_FILE`, `DATA_FILE`),
        so that `data.oracle_dir=folder` gives another run the very same task."""
        folder.mkdir(parents=True, exist_ok=True)
        o = self.oracle
        gates = [g.numpy() for g in (o.W.detach().chunk(4, 1) + o.U.detach().chunk(4, 1) + o.b.detach().chunk(4))]
        arrays = [o.embedding.detach().numpy()]
        for k in range(4):  # Wi Ui bi, Wf Uf bf, Wog Uog bog, Wc Uc bc
            arrays += [gates[k], gates[4 + k], gates[8 + k]]
        arrays += [o.W_out.detach().numpy(), o.b_out.detach().numpy()]
        with open(folder / PARAMS_FILE, "wb") as f:
            pickle.dump(arrays, f)
        write_token_file(folder / DATA_FILE, self.real)


def load_oracle_params(path: Path, *, seq_len: int, start_token: int = 0) -> LSTMPolicy:
    """Build an LSTMPolicy holding the reference code's target LSTM from `path`."""
    try:
        with open(path, "rb") as f:
            arrays = pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the oracle's parameters ({exc})") from None
    if not isinstance(arrays, (list, tuple)) or len(arrays) != 15:
        raise DataError(f"{path}: expected a list of 15 arrays (SOURCES.md), got {type(arrays).__name__}")
    emb, Wi, Ui, bi, Wf, Uf, bf, Wog, Uog, bog, Wc, Uc, bc, Wo, bo = (np.asarray(a, np.float32) for a in arrays)
    V, E = emb.shape
    H = Ui.shape[0]
    oracle = LSTMPolicy(V, E, H, seq_len, start_token)
    with torch.no_grad():
        oracle.embedding.copy_(torch.from_numpy(emb))
        oracle.W.copy_(torch.from_numpy(np.concatenate([Wi, Wf, Wog, Wc], axis=1)))
        oracle.U.copy_(torch.from_numpy(np.concatenate([Ui, Uf, Uog, Uc], axis=1)))
        oracle.b.copy_(torch.from_numpy(np.concatenate([bi, bf, bog, bc])))
        oracle.W_out.copy_(torch.from_numpy(Wo))
        oracle.b_out.copy_(torch.from_numpy(bo))
    return oracle.requires_grad_(False)


def seeded_oracle(cfg: DataConfig) -> LSTMPolicy:
    """An oracle of the configured shape with every parameter N(0, 1) from `cfg.oracle_seed`."""
    oracle = LSTMPolicy(cfg.vocab_size, cfg.oracle_emb_dim, cfg.oracle_hidden_dim, cfg.seq_len,
                        cfg.start_token)
    oracle.reset_parameters(1.0, torch.Generator().manual_seed(cfg.oracle_seed))
    return oracle.requires_grad_(False)


def load_task(cfg: DataConfig) -> SyntheticTask:
    """The paper's oracle and data from `cfg.oracle_dir` when present, else a seeded oracle
    (always, with `cfg.oracle_dir` empty)."""
    params = Path(cfg.oracle_dir) / PARAMS_FILE if cfg.oracle_dir else None
    if params is not None and params.is_file():
        oracle = load_oracle_params(params, seq_len=cfg.seq_len, start_token=cfg.start_token)
        if oracle.vocab_size != cfg.vocab_size:
            raise DataError(f"{params}: the oracle has {oracle.vocab_size} tokens but "
                            f"data.vocab_size is {cfg.vocab_size}; set data.vocab_size={oracle.vocab_size}")
        data_file = params.parent / DATA_FILE
        if data_file.is_file():
            real = read_token_file(data_file, vocab_size=cfg.vocab_size, seq_len=cfg.seq_len)
            return SyntheticTask(oracle, real, f"paper oracle {params}, training data {data_file}")
        real = oracle.sample(cfg.num_train, generator=torch.Generator().manual_seed(cfg.oracle_seed))
        return SyntheticTask(oracle, real, f"paper oracle {params}; {data_file} missing, so "
                                           f"{cfg.num_train} sequences sampled from it (seed {cfg.oracle_seed})")
    if cfg.require_paper_oracle:
        raise DataError(f"{params or 'data.oracle_dir is empty, so ' + PARAMS_FILE} not found: it is {ORIGIN}")
    oracle = seeded_oracle(cfg)
    real = oracle.sample(cfg.num_train, generator=torch.Generator().manual_seed(cfg.oracle_seed + 1))
    why = f"{params} not found ({ORIGIN})" if params is not None else "data.oracle_dir is empty"
    return SyntheticTask(oracle, real, f"{why}; using a seeded N(0, 1) oracle of V {cfg.vocab_size}, "
                                       f"T {cfg.seq_len} (data.oracle_seed={cfg.oracle_seed}) and "
                                       f"{cfg.num_train} sequences sampled from it", seeded=True)
