"""What the generator learns and how it is judged: the synthetic oracle task and text corpora.

`load_task(cfg.data)` picks one from the config: a text corpus when data.corpus is set,
else the synthetic task. Both give the training sequences (`real`), evaluate samples on
their metric and write decoded samples.
"""

from .synthetic import SyntheticTask
from .text import BLEU_ORDERS, TextTask, load_task

__all__ = ["BLEU_ORDERS", "SyntheticTask", "TextTask", "load_task"]
