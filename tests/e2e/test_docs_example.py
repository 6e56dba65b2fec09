"""The algorithm that docs/design.md's "How to add an algorithm" shows, taken from the page as
written, trains end to end: the page cannot drift from the code."""

import re
import sys

from seqgan_ray.runlog import read_metrics
from seqgan_ray.tasks import load_task
from seqgan_ray.trainer import Trainer, local_roles
from tests.helpers import ROOT


def test_the_design_pages_example_algorithm_trains(tiny_cfg, tmp_path, monkeypatch):
    page = (ROOT / "docs" / "design.md").read_text()
    section = page[page.index("### How to add an algorithm"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)[1]
    (tmp_path / "my_gan.py").write_text("\n".join(line[3:] for line in code.splitlines()) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_gan", raising=False)
    cfg = tiny_cfg
    cfg.train.method, cfg.rollout.stride = "my_gan:MyGAN", cfg.data.seq_len  # no prefix rolled out
    Trainer(cfg, load_task(cfg.data), local_roles(cfg), tmp_path / "run").run()
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "gen/pg_loss" in r]
    assert [r["step"] for r in rows] == [1, 2] and all("disc/loss" in r for r in rows)
