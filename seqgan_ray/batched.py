"""K runs of one model that differ only in seed (or in a learning rate), trained as one.

Each parameter of the K generators (or discriminators) is stacked into one tensor with a
leading axis of K, and every product becomes one batched product (`torch.bmm`) over that
axis. A step of the K runs is then as many kernels as a step of one: on a GPU, where a step of
the paper's small models is latency-bound (hundreds of small kernels), K seeds cost about one
run; on a CPU the arithmetic is K times one run's and the saving is the per-kernel overhead.

What makes the K runs equal K separate runs, not merely alike:

- the loss of the batch is the sum of the K runs' own losses, so the gradient of run k's
  slice is run k's gradient;
- Adam is elementwise: `StackedAdam` steps each run's slice with torch's fused Adam at that
  run's own learning rate (a sweep over it is K runs of one model);
- the gradient is clipped per run, at each run's own norm, as `clip_grad_norm_` clips one;
- dropout draws each run's mask from that run's own generator, in the order its step would.

So a batched step equals K separate steps up to floating-point rounding (tests/unit/test_batched.py:
1e-5 in float32, after several steps of MLE, policy gradient and D). The models covered are
SeqGAN's: `LSTMPolicy` and the CNN `Discriminator`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kernels.linear import Linear
from .kernels.maxconv import MaxOverTimeConvs
from .kernels.token_logprob import TokenLogProb
from .models.discriminator import Discriminator
from .models.policy import LSTMPolicy


# On a CPU the arithmetic of K runs is K times one run's whatever the kernels: there the output
# projection (fused with the log-softmax) and the convolutions run one run at a time through the
# training code's own CPU kernels, and only the small products are batched. Elsewhere everything
# is batched (bmm over the runs), which is what saves a GPU's per-kernel latency.
PER_RUN_KERNELS_ON_CPU = True


def _stack(tensors: Sequence[Tensor]) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]).clone())


def _lookup(table: Tensor, tokens: Tensor) -> Tensor:
    """Each run's rows of its own table: `table` (K, V, E), `tokens` (K, ...) -> (K, ..., E)."""
    K = table.shape[0]
    runs = torch.arange(K, device=tokens.device).view(K, *([1] * (tokens.dim() - 1)))
    return table[runs, tokens]


def _linear_runs(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """Each run's x·wᵀ + b: `x` (K, M, N), `w` (K, O, N), `b` (K, O) -> (K, M, O)."""
    if x.device.type == "cpu" and PER_RUN_KERNELS_ON_CPU:
        return torch.stack([Linear.apply(*run) for run in zip(x.unbind(), w.unbind(), b.unbind())])
    return torch.baddbmm(b[:, None], x, w.transpose(1, 2))


class StackedLSTMPolicy(nn.Module):
    """K `LSTMPolicy`s of one shape, their parameters stacked (K, ...): teacher-forced
    log-probabilities of K batches at once, for MLE and Eq. 8."""

    def __init__(self, policies: Sequence[LSTMPolicy]):
        super().__init__()
        first = policies[0]
        if any(p.eos_token is not None for p in policies):
            raise ValueError("stacked policies are for fixed-length sequences (the synthetic task): eos_token must be None")
        shapes = {tuple((n, tuple(t.shape)) for n, t in p.named_parameters()) for p in policies}
        if len(shapes) != 1:
            raise ValueError("stacked policies must share one shape (vocabulary, widths): only their seeds differ")
        self.K, self.hidden_dim, self.start_token = len(policies), first.hidden_dim, first.start_token
        for name, _ in first.named_parameters():
            setattr(self, name, _stack([getattr(p, name) for p in policies]))

    def log_probs(self, seqs: Tensor) -> Tensor:
        """log G_k(y_t | y_<t) for each run's batch `seqs` (K, B, T). Returns (K, B, T)."""
        K, B, T = seqs.shape
        start = seqs.new_full((K, B, 1), self.start_token)
        inputs = torch.cat([start, seqs[..., :-1]], dim=2)
        x = torch.baddbmm(self.b[:, None], _lookup(self.embedding, inputs).view(K, B * T, -1), self.W)
        x = x.view(K, B, T, -1)
        h = c = x.new_zeros(K, B, self.hidden_dim)
        hs = []
        for x_t in x.unbind(2):
            i, f, o, g = (x_t + torch.bmm(h, self.U)).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
        h = torch.stack(hs, 2).view(K, B * T, -1)
        if seqs.device.type == "cpu" and PER_RUN_KERNELS_ON_CPU:  # one run's fused kernel a run at a time
            runs = zip(h.unbind(), self.W_out.unbind(), self.b_out.unbind(), seqs.reshape(K, -1).unbind())
            return torch.stack([TokenLogProb.apply(*run) for run in runs]).view(K, B, T)
        logits = torch.baddbmm(self.b_out[:, None], h, self.W_out)
        return logits.log_softmax(-1).gather(2, seqs.reshape(K, B * T, 1)).view(K, B, T)

    def unstacked(self, k: int) -> dict[str, Tensor]:
        """Run k's parameters, as `LSTMPolicy.state_dict` names them."""
        return {name: p[k].detach().clone() for name, p in self.named_parameters()}


class StackedDiscriminator(nn.Module):
    """K CNN `Discriminator`s of one shape (SeqGAN's: no padding row, no latent head), their
    parameters stacked (K, ...): class logits of K batches at once, for Eq. 5."""

    def __init__(self, discriminators: Sequence[Discriminator]):
        super().__init__()
        first = discriminators[0]
        for d in discriminators:
            if d.shift or d.recon is not None or d.precision != "float32":
                raise ValueError("stacked discriminators are SeqGAN's CNN in float32 (no padding row, no latent head)")
        shapes = {tuple((n, tuple(t.shape)) for n, t in d.named_parameters()) for d in discriminators}
        if len(shapes) != 1:
            raise ValueError("stacked discriminators must share one shape (filters, widths): only their seeds differ")
        self.K, self.filter_sizes, self.dropout = len(discriminators), list(first.filter_sizes), first.dropout
        self.embedding = _stack([d.embedding.weight for d in discriminators])                  # (K, V, E)
        self.filter_w = nn.ParameterList(_stack([d.filter_w[i] for d in discriminators])     # (K, n, k·E)
                                         for i in range(len(first.filter_w)))
        self.filter_b = nn.ParameterList(_stack([d.filter_b[i] for d in discriminators])
                                         for i in range(len(first.filter_b)))
        self.highway_w = _stack([d.highway.weight for d in discriminators])                    # (K, 2F, F)
        self.highway_b = _stack([d.highway.bias for d in discriminators])
        self.out_w = _stack([d.out.weight for d in discriminators])                            # (K, 2, F)
        self.out_b = _stack([d.out.bias for d in discriminators])

    def forward(self, tokens: Tensor, generators: Sequence[torch.Generator] | None = None) -> Tensor:
        """Class logits (K, B, 2) of each run's batch `tokens` (K, B, T). In training mode run
        k's dropout mask is drawn from `generators[k]`, as its own D's would be."""
        K, B, T = tokens.shape
        x = _lookup(self.embedding, tokens)                                   # (K, B, T, E)
        bias = torch.cat(list(self.filter_b), -1)[:, None]                  # (K, 1, F)
        if tokens.device.type == "cpu" and PER_RUN_KERNELS_ON_CPU:  # one run's convolution kernel a run at a time
            runs = zip(x.unbind(), *(w.unbind() for w in self.filter_w))   # unbind: one backward op, not K
            best = torch.stack([MaxOverTimeConvs.apply(xr, x.dtype, tuple(self.filter_sizes), torch.is_grad_enabled(),
                                                       *wr) for xr, *wr in runs])
        else:
            best = []
            for k, w in zip(self.filter_sizes, self.filter_w):
                S = T - k + 1
                windows = x.unfold(2, k, 1).transpose(-1, -2).reshape(K, B * S, -1)   # [j·E + e]: token j, unit e
                best.append(torch.bmm(windows, w.transpose(1, 2)).view(K, B, S, -1).amax(2))
            best = torch.cat(best, -1)
        feat = F.relu(best + bias)                                            # (K, B, F): bias and ReLU after the max
        h, t = _linear_runs(feat, self.highway_w, self.highway_b).chunk(2, dim=-1)
        gate = torch.sigmoid(t)
        feat = gate * F.relu(h) + (1.0 - gate) * feat
        if self.training:
            assert generators is not None and len(generators) == K, "one dropout generator a run"
            keep = 1.0 - self.dropout
            mask = torch.stack([torch.rand(feat.shape[1:], generator=g, device=feat.device) < keep for g in generators])
            feat = feat * mask / keep
        return _linear_runs(feat, self.out_w, self.out_b)

    def unstacked(self, k: int) -> dict[str, Tensor]:
        """Run k's parameters, as `Discriminator.state_dict` names them."""
        out = {"embedding.weight": self.embedding[k], "highway.weight": self.highway_w[k],
               "highway.bias": self.highway_b[k], "out.weight": self.out_w[k], "out.bias": self.out_b[k]}
        for i, (w, b) in enumerate(zip(self.filter_w, self.filter_b)):
            out[f"filter_w.{i}"], out[f"filter_b.{i}"] = w[k], b[k]
        return {name: t.detach().clone() for name, t in out.items()}


class StackedAdam:
    """Adam over stacked parameters (K, ...), with a learning rate per run `lr` (K values): K
    separate Adams, each run's slice stepped by torch's fused Adam kernel (the one the training
    code's optimisers use; no weight decay, no amsgrad), all runs in one call when the rates agree."""

    def __init__(self, params: Sequence[Tensor], lr: Sequence[float], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params = list(params)
        self.lr = [float(x) for x in lr]
        if len(self.lr) != self.params[0].shape[0]:
            raise ValueError(f"one learning rate a run: {len(self.lr)} for {self.params[0].shape[0]} runs")
        self.betas, self.eps = betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), device=p.device) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        torch._foreach_add_(self.steps, 1)
        runs = [slice(None)] if len(set(self.lr)) == 1 else range(len(self.lr))
        for k in runs:
            lr = self.lr[0 if isinstance(k, slice) else k]
            torch._fused_adam_([p[k] for p in self.params], [p.grad[k] for p in self.params],
                               [m[k] for m in self.m], [v[k] for v in self.v], [], self.steps,
                               lr=lr, beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps,
                               amsgrad=False, maximize=False)


def clip_per_run(params: Sequence[Tensor], max_norm: float) -> Tensor:
    """Clip each run's gradient (slice k of every stacked parameter) at its own global norm
    `max_norm`, as `clip_grad_norm_` clips one model's. Returns the K norms before clipping."""
    K = params[0].shape[0]
    norms = torch.stack([p.grad.reshape(K, -1).pow(2).sum(1) for p in params]).sum(0).sqrt()   # (K,)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(scale.view(-1, *([1] * (p.dim() - 1))))
    return norms


def mle_step(policy: StackedLSTMPolicy, opt: StackedAdam, batch: Tensor, grad_clip: float) -> Tensor:
    """One MLE step of each run on its batch `batch` (K, B, T). Returns the K losses."""
    losses = -policy.log_probs(batch).mean(dim=(1, 2))
    opt.zero_grad()
    losses.sum().backward()
    clip_per_run(opt.params, grad_clip)
    opt.step()
    return losses.detach()


def policy_gradient_step(policy: StackedLSTMPolicy, opt: StackedAdam, seqs: Tensor, rewards: Tensor,
                         grad_clip: float) -> Tensor:
    """One Eq. 8 step of each run on its samples `seqs` (K, B, T) and rewards (K, B, T).
    Returns the K losses."""
    losses = -(policy.log_probs(seqs) * rewards.detach()).sum(dim=(1, 2))
    opt.zero_grad()
    losses.sum().backward()
    clip_per_run(opt.params, grad_clip)
    opt.step()
    return losses.detach()


def discriminator_step(d: StackedDiscriminator, opt: StackedAdam, x: Tensor, y: Tensor, l2_reg: float,
                       generators: Sequence[torch.Generator]) -> Tensor:
    """One Eq. 5 step of each run on its batch `x` (K, B, T) with labels `y` (K, B) (1: real),
    plus l2_reg·(‖W‖² + ‖b‖²)/2 of its output layer. Returns the K losses."""
    logits = d(x, generators)
    K, B, _ = logits.shape
    ce = F.cross_entropy(logits.reshape(K * B, 2), y.reshape(K * B), reduction="none").view(K, B).mean(1)
    l2 = 0.5 * (d.out_w.pow(2).sum((1, 2)) + d.out_b.pow(2).sum(1))
    losses = ce + l2_reg * l2
    opt.zero_grad()
    losses.sum().backward()
    opt.step()
    return losses.detach()
