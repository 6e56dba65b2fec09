"""Prepared shards read by Ray Data."""

from __future__ import annotations

from seqgan_ray.tasks.corpus import shard_paths
from tests.helpers import run_prepare, write_file


def test_shards_read_by_ray_data(tmp_path, ray_cluster):
    # One shard, so one path: with several paths Ray Data 2.60 resolves them in threads that all
    # import fsspec's HTTP module, and without aiohttp installed that import races and fails
    # about half the time (ImportError, not the ModuleNotFoundError Ray expects).
    text = write_file(tmp_path / "a.txt", "".join(f"w{i} x\n" for i in range(10)))
    run_prepare(tmp_path, text)
    ds = ray_cluster.data.read_parquet(shard_paths(tmp_path / "out", "train"))
    assert ds.count() == 10
    assert ds.schema().names == ["tokens", "length"]
    assert sorted(r["length"] for r in ds.take_all()) == [3] * 10
