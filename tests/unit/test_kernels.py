"""kernels.linear and Linear: the oneDNN products equal torch's up to rounding, with gradients."""

import pytest
import torch

from seqgan_ray.kernels import linear as kernels
from seqgan_ray.kernels.linear import ONEDNN, Linear, affine, linear, uses_onednn


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2), (torch.float64, 1e-12)])
def test_linear_equals_torch_for_views_and_bias(dtype, tol):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 48, generator=g).to(dtype)
    w = torch.randn(21, 48, generator=g).to(dtype)
    m = torch.randn(48, 21, generator=g).to(dtype)
    b = torch.randn(21, generator=g).to(dtype)
    scale = lambda ref: tol * max(1.0, ref.abs().max().item())
    for got, ref in ((linear(x, w, b), x.double() @ w.double().t() + b.double()),
                     (linear(x, m.t()), x.double() @ m.double()),           # a transposed weight view
                     (linear(x.t().contiguous().t(), w), x.double() @ w.double().t()),
                     (linear(x[:, :20].t(), x[:, 20:40].t()), x[:, :20].double().t() @ x[:, 20:40].double())):
        assert got.dtype == dtype
        assert (got.double() - ref).abs().max() <= scale(ref)


def test_linear_autograd_matches_torch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 16, generator=g, requires_grad=True)
    m = torch.randn(16, 12, generator=g, requires_grad=True)
    b = torch.randn(12, generator=g, requires_grad=True)
    out = affine(x, m, b)
    (out * torch.arange(12.0)).sum().backward()
    got = [t.grad.clone() for t in (x, m, b)]
    for t in (x, m, b):
        t.grad = None
    (torch.addmm(b, x, m) * torch.arange(12.0)).sum().backward()
    for a, r in zip(got, (x.grad, m.grad, b.grad)):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)
    # float64 gradcheck runs through the torch fallback; same Function
    xd, wd = (torch.randn(5, 4, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(lambda a, c: Linear.apply(a, c, None), (xd, wd))


def test_cpu_float32_uses_onednn_when_present(monkeypatch):
    monkeypatch.setattr(kernels, "MIN_MACS", 1 << 22)
    assert uses_onednn(torch.zeros(1024, 64), torch.zeros(64, 64)) == ONEDNN
    assert not uses_onednn(torch.zeros(64, 32), torch.zeros(128, 32))  # too small to pay off
    assert not uses_onednn(torch.zeros(3, 2, dtype=torch.float64)) and not uses_onednn(torch.zeros(0, 2))
    assert linear(torch.zeros(0, 4), torch.ones(3, 4)).shape == (0, 3)
