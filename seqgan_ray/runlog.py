"""What a run leaves behind: metrics.jsonl, TensorBoard events, checkpoints, a plot, progress."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any


class RunLog:
    """Metrics to `metrics.jsonl` (one JSON object a line) and to TensorBoard (tensorboardX).

    Keys are namespaced (`pretrain/gen_nll`, `gen/pg_loss`, `disc/loss`, `eval/oracle_nll`,
    `time/rollout_s`); every record carries the phase, the step within the phase and
    `epoch`, the x-axis of the paper's Figure 2 (MLE epochs, then adversarial iterations).
    """

    def __init__(self, run_dir: Path):
        from tensorboardX import SummaryWriter

        self.run_dir = run_dir
        self.path = run_dir / "metrics.jsonl"
        self.lines = sum(1 for _ in open(self.path)) if self.path.exists() else 0
        self._file = open(self.path, "a")
        self._tb = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, phase: str, step: int, epoch: int, metrics: dict[str, float]) -> None:
        record = {"phase": phase, "step": step, "epoch": epoch, **metrics}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self.lines += 1
        for key, value in metrics.items():
            self._tb.add_scalar(key, value, epoch if key.startswith("eval/") else step)

    def text(self, tag: str, lines: list[str], epoch: int) -> None:
        """Lines of text (a few generator samples) to TensorBoard's text tab, at `epoch`."""
        self._tb.add_text(tag, "\n\n".join(f"`{line}`" for line in lines), epoch)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            self._tb.close()

    @staticmethod
    def reset(run_dir: Path) -> None:
        """A run started afresh: drop the records (TensorBoard events and train.keep_best's best
        generator too) of an earlier start that never reached a checkpoint, so that every step is
        recorded once."""
        for name in ("metrics.jsonl", "best.json", "best_generator.pt"):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)

    @staticmethod
    def truncate(run_dir: Path, lines: int) -> None:
        """Keep the first `lines` records: those written up to the checkpoint resumed from."""
        path = run_dir / "metrics.jsonl"
        kept = path.read_text().splitlines(keepends=True)[:lines] if path.exists() else []
        path.write_text("".join(kept))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class Progress:
    """One line of progress with a rate and an ETA; redrawn in place on a terminal."""

    def __init__(self, label: str, total: int, *, enabled: bool = True, start: int = 0):
        self.label, self.total, self.enabled, self.first = label, total, enabled, start
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def update(self, done: int, text: str = "") -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / (done - self.first) * (self.total - done) if done > self.first else 0.0
        line = f"[{self.label}] {done}/{self.total} {text}  {_clock(elapsed)} elapsed, ETA {_clock(eta)}"
        if self.tty:
            sys.stderr.write("\r\033[K" + line + ("\n" if done >= self.total else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"


LABELS = {"eval/oracle_nll": "NLL-oracle (nats per token)", "eval/nll_test": "NLL-test (nats per token)"}


def plot_metric(metrics: list[dict[str, Any]], png: Path, *, key: str = "eval/oracle_nll",
                pretrain_epochs: int, title: str = "NLL-oracle") -> None:
    """`key` (NLL-oracle by default) against epochs across pretraining and adversarial
    training, like the paper's Figure 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(r["epoch"], r[key]) for r in metrics if key in r]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if points:
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", markersize=3, label="generator")
    ax.axvline(pretrain_epochs, color="gray", linestyle="--", linewidth=1)
    ax.text(pretrain_epochs, ax.get_ylim()[1], " adversarial training starts", va="top", fontsize=8,
            color="gray")
    ax.set_xlabel("epoch (MLE pretraining, then adversarial iterations)")
    ax.set_ylabel(LABELS.get(key, key))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
