"""Training steps replayed from a CUDA graph: one launch instead of hundreds.

On a GPU the paper's models are small enough that a training step is all launch overhead:
the discriminator's step (forward over 12 window sizes, backward, Adam) is hundreds of kernel
launches (a CPU profile counts ~2,000 aten calls a step, views included) that do a few
microseconds of work each. Measured on an H100, eager: 9 ms a D step
of 64 sequences (an epoch 2.8 s, against 9.8 s on 2 CPU cores) and an MLE epoch 2.7 s (3.6 s
on 2 cores). `GraphedStep` records the whole step once and then replays it, with each batch
copied into the recorded input buffers: 1.3 ms a D step, 0.30 s an MLE epoch
(docs/performance.md, section 6).

The step must have fixed shapes and no host synchronisation (no `.item()`): it accumulates
its statistics into tensors. Its first `WARMUP` calls run eagerly on a side stream (real
training steps: PyTorch wants a few before capture, for its lazy initialisations); the next
call records the graph and replays it. Random numbers come from `generator`, registered with
the graph, so each replay draws new ones from the trainer's own stream. Rebuild (`reset`)
after anything replaces the tensors the graph recorded: an optimizer's `load_state_dict`, or
a change of learning rate (the recorded step has it baked in).
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import Tensor

log = logging.getLogger(__name__)

WARMUP = 3


class GraphedStep:
    """`step(*inputs)` (fixed shapes, CUDA tensors) run eagerly WARMUP times, then replayed
    from a CUDA graph; if recording fails, every later call runs eagerly, with a warning."""

    def __init__(self, step: Callable[..., None], generator: torch.Generator | None = None):
        self.step, self.generator = step, generator
        self.reset()

    def reset(self) -> None:
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: list[Tensor] = []
        self.eager_calls = 0
        self.failed = False

    @property
    def replaying(self) -> bool:
        return self.graph is not None

    def __call__(self, *inputs: Tensor) -> None:
        if self.graph is not None:
            for buf, x in zip(self.inputs, inputs):
                buf.copy_(x)
            self.graph.replay()
            return
        if self.failed:
            self.step(*inputs)
            return
        if self.eager_calls < WARMUP:
            self._eager(*inputs)
            return
        self.inputs = [x.clone() for x in inputs]
        graph = torch.cuda.CUDAGraph()
        if self.generator is not None:
            graph.register_generator_state(self.generator)
        try:
            with torch.cuda.graph(graph):
                self.step(*self.inputs)
        except RuntimeError as exc:  # an op that cannot be recorded: stay eager
            log.warning("CUDA graph capture failed (%s); training steps run eagerly", str(exc).splitlines()[0])
            self.failed, self.inputs = True, []
            torch.cuda.synchronize()
            self.step(*inputs)
            return
        self.graph = graph
        graph.replay()  # recording ran nothing: this is the step for `inputs`

    def _eager(self, *inputs: Tensor) -> None:
        side, here = torch.cuda.Stream(), torch.cuda.current_stream()
        side.wait_stream(here)
        with torch.cuda.stream(side):
            self.step(*inputs)
        here.wait_stream(side)
        self.eager_calls += 1
