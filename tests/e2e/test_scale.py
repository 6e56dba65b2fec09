"""The large-corpus benchmark runs end to end (--quick) and reports every figure it promises."""

from __future__ import annotations

import json

import numpy as np

from seqgan_ray.config import load_config
from seqgan_ray.experiments import scale
from seqgan_ray.tasks.text import load_task


def test_generated_corpus_is_a_prepared_corpus(tmp_path):
    folder = scale.write_corpus(tmp_path / "c", 300, vocab=50, T=9, test_rows=40, shard_rows=128)
    task = load_task(load_config(None, [f"data.corpus={folder}"]).data)
    assert task.num_train == 300 and len(task.test) == 40 and task.train_rows.T == 9
    assert (task.train_rows.take(np.arange(300)) == 2).any(1).all()  # every row has <eos>


def test_quick_scale_benchmark_reports_both_sizes(tmp_path, capsys):
    out = tmp_path / "scale.json"
    scale.main(["--quick", "--sections", "corpus", "--threads", "1", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "corpus: 1,000 vs 10,000 training sentences" in printed
    figures = json.loads(out.read_text())["corpus"]["figures"]
    for kind, keys in (("adversarial", ("iteration_s", "d_round_s", "peak_rss_mb", "first_open_s")),
                       ("mle", ("epoch_s", "peak_rss_mb"))):
        for rows in ("1000", "10000"):
            assert all(figures[kind][rows][k] > 0 for k in keys)
