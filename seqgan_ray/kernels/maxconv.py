"""D's convolutions as window matmuls: every window size's valid convolution over time and
max over time in one autograd function (see models/discriminator.py for the layer it serves)."""

from __future__ import annotations

import torch
from torch import Tensor

from .linear import linear

# Windows of at most this many inputs (k·E) make products too thin for a matmul to be worth
# keeping: RelGAN's D convolves k of its 1-unit representations (k·E = 2..5). There, on CPU,
# the rows go in blocks whose products stay under BLOCK_BYTES, each block's products are
# reduced to their maxima at once, and the backward pass recomputes them block by block.
THIN_WINDOW = 16
BLOCK_BYTES = 1 << 20


def windows(x: Tensor, k: int) -> Tensor:
    """The (B·T', k·E) windows of `x` (B, T, E), time-major, T' = T − k + 1 (a copy)."""
    B, T, E = x.shape
    x = x.contiguous()
    return x.as_strided((B, T - k + 1, k * E), (T * E, E, 1)).reshape(B * (T - k + 1), k * E)


def row_blocks(x: Tensor, sizes: tuple[int, ...], maps: list[int]) -> list[slice] | None:
    """For thin windows on CPU, slices of x's rows such that no window size's products
    (rows, T', F_k) of one slice exceed BLOCK_BYTES; None otherwise (every product is kept)."""
    B, T, E = x.shape
    if x.is_cuda or max(sizes) * E > THIN_WINDOW:
        return None
    widest = max((T - k + 1) * n for k, n in zip(sizes, maps)) * x.element_size()
    rows = max(1, BLOCK_BYTES // widest)
    return [slice(i, min(i + rows, B)) for i in range(0, B, rows)]


def products(x: Tensor, k: int, w: Tensor) -> tuple[Tensor, Tensor]:
    """The windows (B·T', k·E) of `x` (B, T, E) and their products with `w`, (B, T', F_k)."""
    win = windows(x, k)
    return win, linear(win, w).view(x.shape[0], x.shape[1] - k + 1, -1)


def max_gradient(y: Tensor, best: Tensor, grad: Tensor) -> Tensor:
    """The gradient (B·T', F) of the products `y` (B, T', F) from that of their maxima over
    time `best` (B, F): each on its maximum's window, split equally by exact ties."""
    hit = y == best[:, None]                       # (B, T', F): where each max is
    share = (grad / hit.sum(dim=1)).to(y.dtype)    # ties split the gradient
    return hit.to(y.dtype).mul_(share[:, None]).view(-1, y.shape[2])  # 2x torch.where here


class MaxOverTimeConvs(torch.autograd.Function):
    """For every window size k: max over t of windows(x, k)[b, t] · w_k[f], concatenated over
    k: x (B, T, E), w_k (F_k, k·E) -> (B, Σ F_k), in x's dtype.

    The products run in `dtype` (x and the filters are cast once each); the results, the
    gradients of x and of the filters come back in x's dtype, and the input gradients of all
    window sizes add up there, so bfloat16 never accumulates. Backward puts each (b, f)
    gradient on its maximum's window (shared equally by exact ties, a valid subgradient of the
    max), then two matmuls give the filter and window gradients, and the k shifted slices of
    the window gradient add up to the input gradient. Equal to conv1d + max (a test checks it).

    Thin windows (`THIN_WINDOW`, RelGAN's D) on CPU: the products, k multiply-adds each, cost
    less to recompute than to store and read back, so the rows go in cache-sized blocks
    (`row_blocks`): only the maxima are kept, and the backward pass recomputes each block's
    products (the same products of the same shapes, so the same bits) to find where they are.
    """

    @staticmethod
    def forward(ctx, x: Tensor, dtype: torch.dtype, sizes: tuple[int, ...], keep: bool,
                *ws: Tensor) -> Tensor:
        """`keep`: whether a backward pass follows (then what it needs is kept; otherwise each
        size's windows and products are freed before the next is computed)."""
        xl, wls = x.to(dtype), [w.to(dtype) for w in ws]
        blocks = row_blocks(xl, sizes, [w.shape[0] for w in ws])
        ctx.sizes, ctx.wide, ctx.blocks = sizes, x.dtype, blocks
        if blocks is not None:
            out = torch.cat([torch.cat([products(xl[rows], k, wl)[1].amax(dim=1) for k, wl in zip(sizes, wls)], dim=1)
                             for rows in blocks])
            if keep:
                ctx.save_for_backward(xl, out, *wls)
            return out.to(x.dtype)
        saved, outs = [], []
        for k, wl in zip(sizes, wls):
            win, y = products(xl, k, wl)
            best = y.amax(dim=1)  # the values only: max with indices is ~12x slower on CPU
            if keep:
                saved += [win, wl, y, best]
            outs.append(best)
        ctx.save_for_backward(*saved)
        ctx.x_shape = x.shape
        return torch.cat(outs, dim=1).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        if ctx.blocks is not None:
            return MaxOverTimeConvs.blocked_backward(ctx, grad)
        (B, T, E), wide, saved = ctx.x_shape, ctx.wide, ctx.saved_tensors
        grad_x = torch.zeros(B, T, E, dtype=wide, device=grad.device)
        grad_ws, start = [], 0
        for i, k in enumerate(ctx.sizes):
            win, wl, y, best = saved[4 * i:4 * i + 4]
            Tp, n = T - k + 1, best.shape[1]
            g, start = max_gradient(y, best, grad[:, start:start + n]), start + n
            grad_ws.append(linear(g.t(), win.t()).to(wide))
            grad_win = linear(g, wl.t()).view(B, Tp, k, E).to(wide)
            for j in range(k):
                grad_x[:, j:j + Tp] += grad_win[:, :, j]
        return grad_x, None, None, None, *grad_ws

    @staticmethod
    def blocked_backward(ctx, grad: Tensor):
        """Thin windows: block by block, the products recomputed; the filter gradient as
        winᵀ·g (reading g once: 5-10x faster than gᵀ·win for k·E of 2-5 on one core)."""
        xl, best, *wls = ctx.saved_tensors
        B, T, E = xl.shape
        grad_x = torch.zeros(B, T, E, dtype=ctx.wide, device=grad.device)
        grad_ws = [torch.zeros(w.shape, dtype=ctx.wide, device=grad.device) for w in wls]
        for rows in ctx.blocks:
            gx, start = grad_x[rows], 0
            for k, wl, grad_w in zip(ctx.sizes, wls, grad_ws):
                win, y = products(xl[rows], k, wl)
                n, Tp = wl.shape[0], T - k + 1
                g = max_gradient(y, best[rows, start:start + n], grad[rows, start:start + n])
                start += n
                grad_w += (win.t() @ g).t().to(ctx.wide)
                grad_win = linear(g, wl.t(), min_macs=0).view(-1, Tp, k, E).to(ctx.wide)  # oneDNN: 3x mm here
                for j in range(k):
                    gx[:, j:j + Tp] += grad_win[:, :, j]
        return grad_x, None, None, None, *grad_ws
