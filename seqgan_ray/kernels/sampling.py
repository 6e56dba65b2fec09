"""Drawing tokens fast: an exact two-level inverse-CDF sampler, and the row block size that
keeps a block of logits in the CPU cache while it is sampled."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sample_categorical(logits: Tensor, u: Tensor, *, block: int = 0) -> Tensor:
    """Exact draw from softmax(logits) by two-level inverse CDF, with uniforms `u` (R, 2).

    `torch.multinomial` on CPU spends one random number per vocabulary entry; here the first
    uniform picks a block of the vocabulary by its total mass and the second a token inside
    it, so a draw costs one exp per entry plus two short cumulative sums. Returns (R,) ids.

    On CPU the logits are exponentiated as they are, two passes over the (R, V) block fewer
    than subtracting each row's max first; a row whose total leaves float32's range (a logit
    above ~88, or all of them below ~-69) sends the block down the max-subtracted path. On a
    GPU those passes are cheap and the range check would cost a synchronisation, so the max
    is always subtracted there.
    """
    if logits.device.type == "cpu":
        draws = _two_level(logits.exp(), u, block, check=True)
        if draws is not None:
            return draws
    return _two_level(logits.sub(logits.amax(dim=-1, keepdim=True)).exp_(), u, block, check=False)


def _two_level(w: Tensor, u: Tensor, block: int, *, check: bool) -> Tensor | None:
    """The draws for unnormalised weights `w` (R, V); None if `check` finds a row's total
    outside float32's normal range (overflowed, or too small to be accurate)."""
    R, V = w.shape
    bs = block or _block_size(V)
    nb = -(-V // bs)
    if nb * bs != V:
        w = torch.nn.functional.pad(w, (0, nb * bs - V))
    blocks = w.view(R, nb, bs)
    cum = blocks.sum(-1).cumsum(-1)  # (R, nb)
    total = cum[:, -1:]
    if check and not bool(((total > 1e-30) & (total < 1e38)).all()):
        return None
    b = torch.searchsorted(cum, u[:, :1].to(cum.dtype) * total, right=True).clamp_(max=nb - 1)
    inner = blocks.gather(1, b.unsqueeze(-1).expand(R, 1, bs)).squeeze(1).cumsum(-1)  # (R, bs)
    j = torch.searchsorted(inner, u[:, 1:].to(inner.dtype) * inner[:, -1:], right=True).clamp_(max=bs - 1)
    return (b * bs + j).squeeze(1).clamp_(max=V - 1)


def cache_rows(vocab_size: int, budget_bytes: int = 5 << 20) -> int:
    """Rows of float32 logits that fit `budget_bytes` (the CPU's L2/L3 share), a multiple of 64.

    Measured here (V = 5000, 2 cores): sampling 256-row blocks ran 2-3x faster than 2048."""
    return max(64, budget_bytes // (4 * vocab_size) // 64 * 64)


def _block_size(V: int) -> int:
    """A divisor of V near sqrt(V) (so no padding copy is needed), else sqrt(V)."""
    root = max(1, int(math.sqrt(V)))
    for d in sorted(range(max(1, root // 2), 2 * root + 1), key=lambda d: abs(d - root)):
        if V % d == 0:
            return d
    return root
