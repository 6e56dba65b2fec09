"""Fused output projection + log-softmax + gather, in cache-sized blocks of rows: the
per-token log-probabilities that MLE and Eq. 8 differentiate (the generator's hot loop)."""

from __future__ import annotations

import torch
from torch import Tensor

from .linear import linear


class TokenLogProb(torch.autograd.Function):
    """log softmax(h·W + b)[target] per row: (R, H), (H, V), (V,), (R,) -> (R,).

    The output projection and the log-softmax fused and done in blocks of rows that stay in
    the CPU cache: the (R, V) logits are never stored (backward recomputes each block), and
    backward is (onehot(target) − softmax) · grad in one pass per block, where
    log_softmax + gather make five passes over all R·V logits in memory.
    """

    BLOCK = 128

    @staticmethod
    def forward(ctx, h: Tensor, W: Tensor, b: Tensor, target: Tensor) -> Tensor:
        out = torch.empty(h.shape[0], dtype=h.dtype, device=h.device)
        lse = torch.empty_like(out)
        for i in range(0, h.shape[0], TokenLogProb.BLOCK):
            logits = linear(h[i:i + TokenLogProb.BLOCK], W.t(), b)  # (block, V)
            lse[i:i + len(logits)] = torch.logsumexp(logits, dim=-1)
            out[i:i + len(logits)] = logits.gather(1, target[i:i + len(logits), None]).squeeze(1)
        ctx.save_for_backward(h, W, b, target, lse)
        return out - lse

    @staticmethod
    def backward(ctx, grad: Tensor):
        h, W, b, target, lse = ctx.saved_tensors
        gh, gW, gb = torch.empty_like(h), torch.zeros_like(W), torch.zeros_like(b)
        for i in range(0, h.shape[0], TokenLogProb.BLOCK):
            j = slice(i, i + TokenLogProb.BLOCK)
            g = linear(h[j], W.t(), b).sub_(lse[j, None]).exp_().mul_(-grad[j, None])  # −softmax·grad
            g.scatter_add_(1, target[j, None], grad[j, None])  # (block, V)
            gh[j] = linear(g, W)
            gW += linear(h[j].t(), g.t())
            gb.add_(g.sum(0))
        return gh, gW, gb, None
