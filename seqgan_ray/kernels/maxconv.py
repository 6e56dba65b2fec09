"""D's convolutions as window matmuls: every window size's valid convolution over time and
max over time in one autograd function (see models/discriminator.py for the layer it serves)."""

from __future__ import annotations

import torch
from torch import Tensor

from .linear import linear


def windows(x: Tensor, k: int) -> Tensor:
    """The (B·T', k·E) windows of `x` (B, T, E), time-major, T' = T − k + 1 (a copy)."""
    B, T, E = x.shape
    x = x.contiguous()
    return x.as_strided((B, T - k + 1, k * E), (T * E, E, 1)).reshape(B * (T - k + 1), k * E)


class MaxOverTimeConvs(torch.autograd.Function):
    """For every window size k: max over t of windows(x, k)[b, t] · w_k[f], concatenated over
    k: x (B, T, E), w_k (F_k, k·E) -> (B, Σ F_k), in x's dtype.

    The products run in `dtype` (x and the filters are cast once each); the results, the
    gradients of x and of the filters come back in x's dtype, and the input gradients of all
    window sizes add up there, so bfloat16 never accumulates. Backward puts each (b, f)
    gradient on its maximum's window (shared equally by exact ties, a valid subgradient of the
    max), then two matmuls give the filter and window gradients, and the k shifted slices of
    the window gradient add up to the input gradient. Equal to conv1d + max (a test checks it).
    """

    @staticmethod
    def forward(ctx, x: Tensor, dtype: torch.dtype, sizes: tuple[int, ...], keep: bool,
                *ws: Tensor) -> Tensor:
        """`keep`: whether a backward pass follows (then each size's windows, products and
        maxima are kept for it; otherwise each is freed before the next is computed)."""
        B, T, E = x.shape
        xl = x.to(dtype)
        saved, outs = [], []
        for k, w in zip(sizes, ws):
            win, wl = windows(xl, k), w.to(dtype)
            y = linear(win, wl).view(B, T - k + 1, -1)
            best = y.amax(dim=1)  # the values only: max with indices is ~12x slower on CPU
            if keep:
                saved += [win, wl, y, best]
            outs.append(best)
        ctx.save_for_backward(*saved)
        ctx.sizes, ctx.x_shape, ctx.wide = sizes, x.shape, x.dtype
        return torch.cat(outs, dim=1).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (B, T, E), wide, saved = ctx.x_shape, ctx.wide, ctx.saved_tensors
        grad_x = torch.zeros(B, T, E, dtype=wide, device=grad.device)
        grad_ws, start = [], 0
        for i, k in enumerate(ctx.sizes):
            win, wl, y, best = saved[4 * i:4 * i + 4]
            Tp, n = T - k + 1, best.shape[1]
            g_k, start = grad[:, start:start + n], start + n
            hit = y == best[:, None]                       # (B, T', F): where each max is
            share = (g_k / hit.sum(dim=1)).to(y.dtype)     # ties split the gradient
            g = (hit * share[:, None]).view(B * Tp, n)
            grad_ws.append(linear(g.t(), win.t()).to(wide))
            grad_win = linear(g, wl.t()).view(B, Tp, k, E).to(wide)
            for j in range(k):
                grad_x[:, j:j + Tp] += grad_win[:, :, j]
        return grad_x, None, None, None, *grad_ws
