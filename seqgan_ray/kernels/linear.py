"""Matrix products on the fastest CPU kernel PyTorch has: `linear(x, w, b)` = x·wᵀ + b.

PyTorch sends float32 matmuls on CPU to MKL, and MKL runs its AVX2 code on AMD processors.
oneDNN, which PyTorch already uses for bfloat16, runs AVX-512 on both. Measured side by side
on this project's 2-core AMD EPYC, one thread: the discriminator's shapes 80-95 GFLOP/s
through `torch.mm` against 165-210 through oneDNN, and the generator's output projection
(K = 32) far more. So on CPU, float32 and bfloat16 products go through oneDNN's linear
(`torch.ops.mkldnn._linear_pointwise`, the kernel torch.compile uses for CPU linears); on a
GPU, for other dtypes, or when this PyTorch has no such op, through `torch.nn.functional.linear`.
The two differ by rounding only (a test checks it).

`Linear` is the same product with autograd, for the layers that train.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


ONEDNN = _onednn_available()


def _onednn_takes(dtype: torch.dtype) -> bool:
    """Whether this CPU's oneDNN has a linear kernel for `dtype`: for bfloat16 it needs AVX-512
    (an AVX2-only EPYC answered "could not create a primitive descriptor for the inner product
    forward propagation primitive", and every bfloat16 discriminator step failed); torch's
    own bfloat16 product runs there, slower."""
    if not ONEDNN:
        return False
    try:
        one = torch.ones(1, 1, dtype=dtype)
        torch.ops.mkldnn._linear_pointwise(one, one, None, "none", [], "")
        return True
    except RuntimeError:
        return False


_ONEDNN_DTYPES = tuple(dt for dt in (torch.float32, torch.bfloat16) if _onednn_takes(dt))


def slow_bfloat16_note() -> str | None:
    """A warning for `discriminator.precision: bfloat16` on a CPU whose oneDNN has no bfloat16
    kernel: there torch's own bfloat16 product ran a discriminator step 11x slower than float32
    (3.7 s against 0.33 s, one AVX2-only EPYC)."""
    if torch.bfloat16 in _ONEDNN_DTYPES:
        return None
    return ("warning: discriminator.precision=bfloat16 on a CPU without AVX-512 is many times slower "
            "than float32 here (torch's fallback bfloat16 products); set discriminator.precision=float32")


# Below this many multiply-adds a product stays with torch: oneDNN runs every product on all
# its threads, and for the LSTM's per-step (64 x 32) · (32 x 128) the fork and join cost more
# than the product (an actor's scheduled-sampling epoch took 50 s instead of 7).
MIN_MACS = 1 << 22


def uses_onednn(x: Tensor, w: Tensor | None = None, min_macs: int = MIN_MACS) -> bool:
    """Whether `linear(x, w, min_macs=min_macs)` goes through oneDNN."""
    big = w is None or x.shape[0] * x.shape[1] * w.shape[0] >= min_macs
    return ONEDNN and x.device.type == "cpu" and x.dtype in _ONEDNN_DTYPES and x.shape[0] > 0 and big


def linear(x: Tensor, w: Tensor, b: Tensor | None = None, *, min_macs: int = MIN_MACS) -> Tensor:
    """x (M, K) · w (N, K)ᵀ + b (N,) -> (M, N), without autograd. `w` may be a transposed
    view (w = m.t() gives x·m), which oneDNN reads without a copy. Products of fewer than
    `min_macs` multiply-adds stay with torch."""
    if uses_onednn(x, w, min_macs):
        return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
    return F.linear(x, w, b)


class Linear(torch.autograd.Function):
    """`linear` with gradients for x, w and b, every product again through `linear`."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return linear(x, w, b)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, w = ctx.saved_tensors
        gx = linear(grad, w.t()) if ctx.needs_input_grad[0] else None       # g · w
        gw = linear(grad.t(), x.t()) if ctx.needs_input_grad[1] else None   # gᵀ · x
        gb = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


def affine(x: Tensor, m: Tensor, b: Tensor | None = None) -> Tensor:
    """x (M, K) · m (K, N) + b, with autograd: the `torch.addmm(b, x, m)` of a layer stored
    input-major (the LSTM's W, U and W_out)."""
    return Linear.apply(x, m.t(), b)
