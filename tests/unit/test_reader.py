"""A corpus read a few rows at a time: the token cache, samples, streamed MLE epochs, and a
broken corpus refused before training, naming the file or key."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from seqgan_ray.cli import main
from seqgan_ray.config import ConfigError, load_config
from seqgan_ray.tasks.corpus import read_split
from seqgan_ray.tasks.reader import SplitReader, distinct_indices
from seqgan_ray.tasks.text import load_task
from seqgan_ray.tasks.token_file import DataError
from seqgan_ray.trainer import Trainer, local_roles
from tests.helpers import TINY_TEXT, run_prepare, text_corpus


@pytest.fixture
def corpus(tmp_path):
    """A prepared corpus of 300 training sentences in 3 shards (100 rows each)."""
    train, test = text_corpus(tmp_path / "text")
    run_prepare(tmp_path, train, test=test, shard_rows=100)
    return tmp_path / "out"


def _cfg(corpus, *overrides):
    return load_config(None, [f"data.corpus={corpus}", *TINY_TEXT, *overrides])


def test_reader_rows_are_the_shards_rows_and_the_cache_is_reused_until_the_corpus_changes(corpus):
    reader = SplitReader(corpus, "train")
    whole = read_split(corpus, "train")
    assert len(reader) == 300 and torch.equal(reader.take(np.arange(300)), whole)
    index = np.array([299, 0, 150, 7])
    assert torch.equal(reader.take(index), whole[index])  # in the order asked
    cache = corpus / "cache" / f"train-T{reader.T}.npy"
    built = cache.stat().st_mtime_ns
    SplitReader(corpus, "train")
    assert cache.stat().st_mtime_ns == built  # opened, not rebuilt
    cache.write_bytes(cache.read_bytes()[:-7])  # a cache cut short is made again
    assert torch.equal(SplitReader(corpus, "train").take(np.arange(300)), whole)
    shard = corpus / "train" / "part-00001.parquet"
    table = pq.read_table(shard)
    pq.write_table(pa.concat_tables([table.slice(1), table.slice(0, 1)]), shard)  # rows in another order
    os.utime(shard, ns=(built + 10**9, built + 10**9))
    assert not torch.equal(SplitReader(corpus, "train").take(np.arange(300)), whole)


def test_samples_are_distinct_uniform_and_drawn_from_the_generator(corpus):
    reader = SplitReader(corpus, "train")
    a = distinct_indices(10**9, 1000, torch.Generator().manual_seed(1))  # memory O(n), not O(S)
    assert len(set(a.tolist())) == 1000 and a.max() < 10**9
    assert np.array_equal(a, distinct_indices(10**9, 1000, torch.Generator().manual_seed(1)))
    full = distinct_indices(300, 300, torch.Generator().manual_seed(0))
    assert sorted(full.tolist()) == list(range(300))
    hits = np.zeros(300)
    rng = torch.Generator().manual_seed(0)
    for _ in range(300):
        hits[distinct_indices(300, 30, rng)] += 1
    assert hits.min() > 5 and hits.max() < 60  # each row ~30 times: uniform, not a fixed subset
    assert reader.sample(64, rng).shape == (64, reader.T)
    fixed = reader.fixed_sample(50, seed=0)
    assert torch.equal(fixed, reader.fixed_sample(50, seed=0))
    assert torch.equal(reader.fixed_sample(300, seed=0), read_split(corpus, "train"))


def test_a_streamed_epoch_visits_every_row_once_in_full_batches(tmp_path, monkeypatch):
    import seqgan_ray.tasks.reader as reader_module

    monkeypatch.setattr(reader_module, "BLOCK_ROWS", 16)  # several blocks and buffers in 300 rows
    monkeypatch.setattr(reader_module, "BUFFER_BLOCKS", 4)
    text = tmp_path / "unique.txt"
    text.write_text("".join(f"word{i} end\n" for i in range(300)))  # every row its own first word
    run_prepare(tmp_path, text, shard_rows=100)
    reader = SplitReader(tmp_path / "out", "train")
    row_of = {int(first): i for i, first in enumerate(reader.take(np.arange(300))[:, 0])}

    def rows(batches):
        return [row_of[int(first)] for b in batches for first in b[:, 0]]

    seen = rows(reader.batches(32, torch.Generator().manual_seed(0)))
    assert len(seen) == 300 // 32 * 32 and len(set(seen)) == len(seen)  # full batches, no repeats
    assert seen != sorted(seen)
    assert rows(reader.batches(32, torch.Generator(), shuffle=False)) == list(range(288))


def test_streamed_mle_equals_mle_on_the_held_tensor_and_no_role_holds_the_corpus(corpus, tmp_path):
    cfg = _cfg(corpus, "generator.shuffle=false", "train.num_negatives=40")
    task = load_task(cfg.data)
    streamed = Trainer(cfg, task, local_roles(cfg), tmp_path / "a")
    loss = streamed.mle_epoch()
    held = local_roles(cfg)
    held.learner.set_data(read_split(corpus, "train"))
    assert loss == pytest.approx(held.learner.pretrain_epoch(), rel=1e-6)
    for a, b in zip(streamed.learner.weights().values(), held.learner.weights().values()):
        assert torch.allclose(a, b, atol=1e-6)
    assert streamed.learner.data is None and streamed.disc.real is None
    real = streamed.real_for_d()
    assert real.shape == (40, task.train_rows.T)  # as many as the negatives
    stats = streamed.d_round(1)
    assert 0 <= stats.acc_real <= 1 and 0 <= stats.acc_fake <= 1


def test_a_text_run_resumed_writes_the_metrics_of_an_uninterrupted_one(corpus, tmp_path):
    common = ["--no-ray", f"data.corpus={corpus}", f"run.out_dir={tmp_path}", *TINY_TEXT,
              "train.num_negatives=40", "train.adv_iterations=3", "train.checkpoint_every=1"]
    assert main([*common, "run.name=whole"]) == 0
    assert main([*common, "run.name=cut", "train.adv_iterations=1"]) == 0
    assert main(["--no-ray", "--resume", str(tmp_path / "cut"), "train.adv_iterations=3"]) == 0

    def numbers(run):
        return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
                for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    assert numbers("cut") == numbers("whole")
    assert "adv_iterations: 3" in (tmp_path / "cut" / "config.yaml").read_text()  # what the resume ran


@pytest.mark.parametrize("damage, named", [
    ("missing", "part-00001.parquet: missing"),
    ("truncated", "part-00001.parquet: not a readable Parquet file"),
    ("schema", "part-00001.parquet: schema"),
    ("vocabulary", "part-00001.parquet: token id 999999 outside the vocabulary"),
    ("rows", "the shards hold 299 sentences, metadata.json says 300"),
])
def test_a_broken_corpus_is_refused_before_training_naming_the_file(corpus, tmp_path, capsys, damage, named):
    shard = corpus / "train" / "part-00001.parquet"
    table = pq.read_table(shard)
    if damage == "missing":
        shard.unlink()
    elif damage == "truncated":
        shard.write_bytes(shard.read_bytes()[:-40])
    elif damage == "schema":
        pq.write_table(table.rename_columns(["words", "length"]), shard)
    elif damage == "vocabulary":
        tokens = table.column("tokens").combine_chunks()
        values = tokens.flatten().to_numpy().copy()
        values[0] = 999999
        fixed = pa.ListArray.from_arrays(tokens.offsets, pa.array(values, pa.int32()))
        pq.write_table(pa.Table.from_arrays([fixed, table.column("length")], schema=table.schema), shard)
    else:
        pq.write_table(table.slice(1), shard)
    with pytest.raises(DataError, match=named):
        SplitReader(corpus, "train")
    run = tmp_path / "runs" / "r"
    assert main(["--no-ray", f"data.corpus={corpus}", f"run.out_dir={tmp_path / 'runs'}", "run.name=r",
                 *TINY_TEXT]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not (run / "metrics.jsonl").exists()  # refused before any training


def test_sample_sizes_are_checked_naming_the_key(corpus, tmp_path):
    for key in ("data.test_sample", "train.num_real"):
        with pytest.raises(ConfigError, match=f"'{key}' must be a number of sentences"):
            _cfg(corpus, f"{key}=0")
    with pytest.raises(DataError, match=r"data.test_sample=61: more than the 60 sentences"):
        load_task(_cfg(corpus, "data.test_sample=61").data)
    assert len(load_task(_cfg(corpus, "data.test_sample=25").data).test) == 25
    assert len(load_task(_cfg(corpus).data).test) == 60  # -1: the whole split when it is small
    cfg = _cfg(corpus, "train.num_real=301")
    with pytest.raises(DataError, match=r"train.num_real=301: more than the 300 training sequences"):
        Trainer(cfg, load_task(cfg.data), local_roles(cfg), tmp_path / "run")
