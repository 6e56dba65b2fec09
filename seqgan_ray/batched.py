"""K runs of one model that differ only in seed (or in a learning rate), trained as one.

Each parameter of the K generators (or discriminators) is stacked into one tensor with a
leading axis of K, and each product becomes one batched product (`torch.bmm`) over that axis.
A step of the K runs is then as many kernels as a step of one: on a GPU, where a step of the
paper's small models is latency-bound (hundreds of small kernels), K seeds should cost about
one run. On a CPU the arithmetic of K runs is K times one run's whatever the kernels, so there
the big products go through the training code's own CPU kernels a run at a time
(`PER_RUN_KERNELS_ON_CPU`; docs/performance.md, "Seeds stacked into one model", has both).

What makes the K runs equal K separate runs, not merely alike:

- the loss of the batch is the sum of the K runs' own losses, so the gradient of run k's
  slice is run k's gradient;
- Adam is elementwise: `StackedAdam` steps each run's slice with torch's fused Adam at that
  run's own learning rate (a sweep over it is K runs of one model);
- the gradient is clipped per run, at each run's own norm, as `clip_grad_norm_` clips one;
- each run's dropout masks, samples, rollout uniforms and D shuffles come from that run's own
  generator, in the order its own code draws them.

So a stacked step equals K separate steps up to floating-point rounding (tests/unit/test_batched.py,
1e-5 in float32): MLE, Eq. 8 and D steps, sampling, Eq. 4 rewards, D epochs, and `StackedSeqGAN`'s
whole iteration against each run's roles. The models covered are SeqGAN's on the synthetic
task: `LSTMPolicy` and the CNN `Discriminator` (D in float32 or bfloat16). `reproduce --stack-seeds` trains
with it (stacked_runs.py: each run's own folder, logs and checkpoints); Tune still runs a
model a trial.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kernels.linear import Linear, linear
from .kernels.maxconv import MaxOverTimeConvs
from .kernels.sampling import cache_rows, sample_categorical
from .kernels.token_logprob import TokenLogProb
from .models.discriminator import Discriminator
from .models.policy import LSTMPolicy
from .rollout import complete_prefixes, reward_columns, rollout_prefixes, rollout_uniforms

if TYPE_CHECKING:
    from .config import Config
    from .roles import DiscriminatorTrainer, GeneratorLearner


# On a CPU: the output projection (fused with the log-softmax, or the sampler's logits), the
# convolutions and D's linear layers one run at a time through the training code's own CPU
# kernels, only the LSTM's small products batched. Elsewhere every product batched over the runs.
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
        self.K, self.hidden_dim, self.start_token, self.T = len(policies), first.hidden_dim, first.start_token, first.seq_len
        for name, _ in first.named_parameters():
            setattr(self, name, _stack([getattr(p, name) for p in policies]))

    def hidden_states(self, seqs: Tensor) -> tuple[Tensor, Tensor]:
        """Each run teacher-forced over its batch `seqs` (K, B, T): h and c after each step,
        (K, B, T, H); [:, :, t] has read the start token and y_0..y_{t−1}."""
        K, B, T = seqs.shape
        start = seqs.new_full((K, B, 1), self.start_token)
        inputs = torch.cat([start, seqs[..., :-1]], dim=2)
        x = torch.baddbmm(self.b[:, None], _lookup(self.embedding, inputs).view(K, B * T, -1), self.W)
        h = c = x.new_zeros(K, B, self.hidden_dim)
        hs, cs = [], []
        for x_t in x.view(K, B, T, -1).unbind(2):
            h, c = self._cell(x_t, h, c)
            hs.append(h)
            cs.append(c)
        return torch.stack(hs, 2), torch.stack(cs, 2)

    def _cell(self, x_gates: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """The LSTM cell of every run: gates' input share (K, R, 4H), state (K, R, H) each."""
        i, f, o, g = (x_gates + torch.bmm(h, self.U)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def log_probs(self, seqs: Tensor) -> Tensor:
        """log G_k(y_t | y_<t) for each run's batch `seqs` (K, B, T). Returns (K, B, T)."""
        K, B, T = seqs.shape
        h = self.hidden_states(seqs)[0].view(K, B * T, -1)
        if seqs.device.type == "cpu" and PER_RUN_KERNELS_ON_CPU:  # one run's fused kernel a run at a time
            runs = zip(h.unbind(), self.W_out.unbind(), self.b_out.unbind(), seqs.reshape(K, -1).unbind())
            return torch.stack([TokenLogProb.apply(*run) for run in runs]).view(K, B, T)
        logits = torch.baddbmm(self.b_out[:, None], h, self.W_out)
        return logits.log_softmax(-1).gather(2, seqs.reshape(K, B * T, 1)).view(K, B, T)

    # Eq. 4's completions (rollout.RolloutPolicy): rows first, each row holding all K runs, so
    # a row's tokens are (K,) and its state (K, H); rollout.complete_prefixes carries the axis.

    def prefix_states(self, seqs: Tensor) -> tuple[Tensor, Tensor]:
        """The state after every prefix of `seqs` (B, T, K): h and c, each (B, T, K, H)."""
        h, c = self.hidden_states(seqs.permute(2, 0, 1))
        return h.permute(1, 2, 0, 3), c.permute(1, 2, 0, 3)

    def step(self, tokens: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """The state (R, K, H) each after reading `tokens` (R, K)."""
        h, c = (s.transpose(0, 1) for s in state)
        x = torch.baddbmm(self.b[:, None], _lookup(self.embedding, tokens.t()), self.W)
        h, c = self._cell(x, h, c)
        return h.transpose(0, 1), c.transpose(0, 1)

    def sample_next(self, state: tuple[Tensor, Tensor], u: Tensor) -> Tensor:
        """The next tokens (R, K) drawn from `state` with uniforms `u` (R, K, 2), a block of
        rows at a time (as `LSTMPolicy.sample_next`: the logits never exist whole)."""
        h = state[0].transpose(0, 1)                                            # (K, R, H)
        K, R = h.shape[:2]
        n = max(1, cache_rows(self.W_out.shape[-1]) // K)
        out = []
        per_run = h.device.type == "cpu" and PER_RUN_KERNELS_ON_CPU
        for i in range(0, R, n):
            if per_run:   # the training code's product (oneDNN's on CPU), a run at a time
                logits = torch.stack([linear(h[r, i:i + n], self.W_out[r].t(), self.b_out[r]) for r in range(K)])
            else:
                logits = torch.baddbmm(self.b_out[:, None], h[:, i:i + n], self.W_out)   # (K, n, V)
            ui = u[i:i + n].transpose(0, 1).reshape(-1, 2)
            out.append(sample_categorical(logits.reshape(-1, logits.shape[-1]), ui).view(K, -1))
        return torch.cat(out, 1).t()

    def finish(self, seqs: Tensor) -> Tensor:
        return seqs   # fixed-length sequences

    @torch.no_grad()
    def sample(self, num: int, generators: Sequence[torch.Generator]) -> Tensor:
        """`num` sequences of each run (K, num, T), run k's uniforms drawn from `generators[k]`
        in the order `LSTMPolicy.sample` draws them."""
        device = self.W.device
        h = self.W.new_zeros(num, self.K, self.hidden_dim)
        state = (h, h.clone())
        tok = torch.full((num, self.K), self.start_token, dtype=torch.long, device=device)
        seq = []
        for _ in range(self.T):
            state = self.step(tok, state)
            u = torch.stack([torch.rand(num, 2, generator=g, device=device) for g in generators], 1)
            tok = self.sample_next(state, u)
            seq.append(tok)
        return torch.stack(seq, 2).permute(1, 0, 2).contiguous()            # (K, num, T)

    def source_names(self) -> list[str]:
        """The K models' parameter names, in the order of this module's parameters."""
        return [name for name, _ in self.named_parameters()]

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
            if d.shift or d.recon is not None:
                raise ValueError("stacked discriminators are SeqGAN's CNN (no padding row, no latent head)")
        if len({d.precision for d in discriminators}) != 1:
            raise ValueError("stacked discriminators must share one precision: only their seeds differ")
        shapes = {tuple((n, tuple(t.shape)) for n, t in d.named_parameters()) for d in discriminators}
        if len(shapes) != 1:
            raise ValueError("stacked discriminators must share one shape (filters, widths): only their seeds differ")
        self.K, self.filter_sizes, self.dropout, self.T = (len(discriminators), list(first.filter_sizes), first.dropout,
                                                           first.seq_len)
        # bfloat16: the convolutions and the highway layer in bfloat16 on float32 weights, as
        # `Discriminator`'s precision="bfloat16"; the output layer in float32
        self.precision = first.precision
        self.embedding = _stack([d.embedding.weight for d in discriminators])                  # (K, V, E)
        self.filter_w = nn.ParameterList(_stack([d.filter_w[i] for d in discriminators])     # (K, n, k·E)
                                         for i in range(len(first.filter_w)))
        self.filter_b = nn.ParameterList(_stack([d.filter_b[i] for d in discriminators])
                                         for i in range(len(first.filter_b)))
        self.highway_w = _stack([d.highway.weight for d in discriminators])                    # (K, 2F, F)
        self.highway_b = _stack([d.highway.bias for d in discriminators])
        self.out_w = _stack([d.out.weight for d in discriminators])                            # (K, 2, F)
        self.out_b = _stack([d.out.bias for d in discriminators])
        self._copies: dict[int, Discriminator] = {}   # `run`'s

    def forward(self, tokens: Tensor, generators: Sequence[torch.Generator] | None = None) -> Tensor:
        """Class logits (K, B, 2) of each run's batch `tokens` (K, B, T). In training mode run
        k's dropout mask is drawn from `generators[k]`, as its own D's would be."""
        K, B, T = tokens.shape
        x = _lookup(self.embedding, tokens)                                   # (K, B, T, E)
        bias = torch.cat(list(self.filter_b), -1)[:, None]                  # (K, 1, F)
        dt = self.compute_dtype
        if tokens.device.type == "cpu" and PER_RUN_KERNELS_ON_CPU:  # one run's convolution kernel a run at a time
            runs = zip(x.unbind(), *(w.unbind() for w in self.filter_w))   # unbind: one backward op, not K
            best = torch.stack([MaxOverTimeConvs.apply(xr, dt, tuple(self.filter_sizes), torch.is_grad_enabled(),
                                                       *wr) for xr, *wr in runs])
        else:
            best = []
            for k, w in zip(self.filter_sizes, self.filter_w):
                S = T - k + 1
                windows = x.unfold(2, k, 1).transpose(-1, -2).reshape(K, B * S, -1)   # [j·E + e]: token j, unit e
                best.append(torch.bmm(windows.to(dt), w.to(dt).transpose(1, 2)).view(K, B, S, -1).amax(2).to(x.dtype))
            best = torch.cat(best, -1)
        feat = F.relu(best + bias)                                            # (K, B, F): bias and ReLU after the max
        hw = _linear_runs(feat.to(dt), self.highway_w.to(dt), self.highway_b.to(dt)).to(feat.dtype)
        h, t = hw.chunk(2, dim=-1)
        gate = torch.sigmoid(t)
        feat = gate * F.relu(h) + (1.0 - gate) * feat
        if self.training:
            assert generators is not None and len(generators) == K, "one dropout generator a run"
            keep = 1.0 - self.dropout
            mask = torch.stack([torch.rand(feat.shape[1:], generator=g, device=feat.device) < keep for g in generators])
            feat = feat * mask / keep
        return _linear_runs(feat, self.out_w, self.out_b)

    @property
    def compute_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bfloat16" else self.embedding.dtype

    @torch.no_grad()
    def prob_real(self, tokens: Tensor, *, chunk_rows: int = 1024) -> Tensor:
        """P(real) of each run's rows `tokens` (K, R, T) under its own D, in blocks of rows;
        dropout off. Returns (K, R)."""
        was_training = self.training
        self.eval()
        out = torch.cat([torch.softmax(self(tokens[:, i:i + chunk_rows]), dim=-1)[..., 1]
                         for i in range(0, tokens.shape[1], chunk_rows)], 1)
        self.train(was_training)
        return out

    def source_names(self) -> list[str]:
        """The K models' parameter names, in the order of this module's parameters."""
        renamed = {"embedding": "embedding.weight", "highway_w": "highway.weight", "highway_b": "highway.bias",
                   "out_w": "out.weight", "out_b": "out.bias"}
        return [renamed.get(name, name) for name, _ in self.named_parameters()]

    def run(self, k: int) -> Discriminator:
        """Run k's D as a `Discriminator` of its own (a copy of its weights now, in eval mode,
        without gradients)."""
        if k in self._copies:
            self._copies[k].load_state_dict(self.unstacked(k))
            return self._copies[k]
        V, E = self.embedding.shape[1:]
        d = self._copies[k] = Discriminator(V, self.T, emb_dim=E, filter_sizes=self.filter_sizes,
                                            num_filters=[w.shape[1] for w in self.filter_w], dropout=self.dropout,
                                            precision=self.precision)
        d.load_state_dict(self.unstacked(k))
        return d.requires_grad_(False).eval().to(self.embedding.device)

    def unstacked(self, k: int) -> dict[str, Tensor]:
        """Run k's parameters, as `Discriminator.state_dict` names them."""
        return {name: p[k].detach().clone() for name, p in zip(self.source_names(), self.parameters())}


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

    @torch.no_grad()
    def take_over(self, stacked: nn.Module, models: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Continue where each run's own Adam (`optimizers[k]`, over `models[k]`) stopped: its
        moments and step count. The runs must have taken as many steps."""
        for i, name in enumerate(stacked.source_names()):
            for k, (model, opt) in enumerate(zip(models, optimizers)):
                state = opt.state.get(dict(model.named_parameters())[name])
                if not state:
                    continue
                self.m[i][k], self.v[i][k] = state["exp_avg"], state["exp_avg_sq"]
                step = float(state["step"])
                if k and step != float(self.steps[i]):
                    raise ValueError(f"runs at different Adam steps ({step:g} against {float(self.steps[i]):g}): "
                                     f"stack runs at the same point of their schedule")
                self.steps[i].fill_(step)

    @torch.no_grad()
    def give_back(self, stacked: nn.Module, models: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Hand each run's moments and step count back to its own Adam (`optimizers[k]`, over
        `models[k]`), which then goes on as if it had taken every step itself."""
        for i, name in enumerate(stacked.source_names()):
            for k, (model, opt) in enumerate(zip(models, optimizers)):
                param = dict(model.named_parameters())[name]
                state = opt.state[param]
                if not state:  # an Adam that has not stepped yet: its state as its first step makes it
                    state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg"].copy_(self.m[i][k])
                state["exp_avg_sq"].copy_(self.v[i][k])
                state["step"].fill_(float(self.steps[i]))

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


class StackedDiscStats(NamedTuple):
    """`roles.DiscStats` of K runs: each (K,)."""
    loss: Tensor      # mean loss over the steps
    acc_real: Tensor  # share of the real sequences D called real, over the epochs
    acc_fake: Tensor  # share of the fake ones called fake


def train_discriminator(d: StackedDiscriminator, opt: StackedAdam, real: Tensor, fake: Tensor, epochs: int,
                        batch_size: int, l2_reg: float, generators: Sequence[torch.Generator]) -> StackedDiscStats:
    """`epochs` passes of each run's D over its real (K, S', T) and `fake` (K, S, T) sequences,
    shuffled together, as `roles.DiscriminatorTrainer.train` does one run's: each epoch's order
    and each step's dropout drawn from the run's generator, in that order. Returns each run's
    mean loss and training accuracies, as the role's `DiscStats`."""
    K = real.shape[0]
    x = torch.cat([real, fake], 1)
    y = torch.cat([torch.ones(real.shape[:2], dtype=torch.long, device=x.device),
                   torch.zeros(fake.shape[:2], dtype=torch.long, device=x.device)], 1)
    runs = torch.arange(K, device=x.device)[:, None]
    d.train()
    tally, steps = torch.zeros(K, 3, device=x.device), 0   # loss, right on real, right on fake
    for _ in range(epochs):
        order = torch.stack([torch.randperm(x.shape[1], generator=g, device=x.device) for g in generators])
        for i in range(0, x.shape[1], batch_size):
            idx = order[:, i:i + batch_size]
            discriminator_step(d, opt, x[runs, idx], y[runs, idx], l2_reg, generators, tally=tally)
            steps += 1
    n = max(epochs, 1)
    return StackedDiscStats(tally[:, 0] / max(steps, 1), tally[:, 1] / (n * real.shape[1]),
                            tally[:, 2] / (n * fake.shape[1]))


@torch.no_grad()
def mc_rewards(policy: StackedLSTMPolicy, d: StackedDiscriminator, seqs: Tensor, num_rollouts: int,
               generators: Sequence[torch.Generator], *, stride: int = 1) -> Tensor:
    """Eq. 4 for each run's batch `seqs` (K, B, T): run k's completions by its β policy, its
    uniforms from `generators[k]` (as `rollout.mc_rewards` draws them), scored by its own D.
    Returns rewards (K, B, T)."""
    K, B, T = seqs.shape
    N = num_rollouts
    u = torch.stack([rollout_uniforms(B, T, N, generator=g, device=seqs.device) for g in generators], -2)
    lengths = rollout_prefixes(T, stride)
    completions = complete_prefixes(policy, seqs.permute(1, 2, 0), N, u, lengths=lengths)   # (L, N, B, T, K)
    L = len(lengths)
    if seqs.device.type == "cpu" and PER_RUN_KERNELS_ON_CPU:   # each run's D, sharing the windows inside a prefix
        q, last = [], []
        for k in range(K):
            dk = d.run(k)
            q.append(dk.prob_real_rollouts(seqs[k], completions[..., k], lengths).mean(1))
            last.append(dk.prob_real(seqs[k]))
        q, last = torch.stack(q), torch.stack(last)
    else:
        rows = completions.permute(4, 0, 1, 2, 3).reshape(K, L * N * B, T)
        scores = d.prob_real(torch.cat([rows, seqs], 1))                                      # (K, L·N·B + B)
        q, last = scores[:, :-B].view(K, L, N, B).mean(2), scores[:, -B:]
    table = torch.cat([q, last[:, None]], 1)                                                  # (K, L + 1, B)
    return torch.cat([table[:, reward_columns(T, lengths)].transpose(1, 2), last[..., None]], 2)


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
                       generators: Sequence[torch.Generator], *, tally: Tensor | None = None) -> Tensor:
    """One Eq. 5 step of each run on its batch `x` (K, B, T) with labels `y` (K, B) (1: real),
    plus l2_reg·(‖W‖² + ‖b‖²)/2 of its output layer. Returns the K losses; `tally` (K, 3), if
    given, gets each run's loss and its right calls on real and on fake rows added."""
    logits = d(x, generators)
    K, B, _ = logits.shape
    ce = F.cross_entropy(logits.reshape(K * B, 2), y.reshape(K * B), reduction="none").view(K, B).mean(1)
    l2 = 0.5 * (d.out_w.pow(2).sum((1, 2)) + d.out_b.pow(2).sum(1))
    losses = ce + l2_reg * l2
    opt.zero_grad()
    losses.sum().backward()
    opt.step()
    if tally is not None:
        hit = logits.detach().argmax(-1) == y
        tally += torch.stack([losses.detach(), (hit & (y == 1)).sum(1).float(), (hit & (y == 0)).sum(1).float()], 1)
    return losses.detach()


@torch.no_grad()
def blend(beta: StackedLSTMPolicy, theta: StackedLSTMPolicy, update_rate: float) -> None:
    """β ← r·β + (1−r)·θ for every run (the delayed rollout policy)."""
    for b, t in zip(beta.parameters(), theta.parameters()):
        b.mul_(update_rate).add_(t, alpha=1.0 - update_rate)


class StackedSeqGAN:
    """K runs of SeqGAN's adversarial phase (Algorithm 1) that differ in seed (and learning
    rates), stepped together: each `iteration` is g_steps × (samples of each run's G_θ, Eq. 4
    rewards by its β and D, an Eq. 8 step), β's update, and d_steps × (fresh negatives, k_epochs
    of D against the run's real sequences), as algorithms.seqgan does one run's with the roles.

    Built from the K runs' roles (`roles.GeneratorLearner`, the `RolloutWorker`s' streams,
    `DiscriminatorTrainer`): their weights and Adam moments are taken over and their random
    streams shared, so the K runs go on exactly where they were; `give_back` writes each run's
    weights and moments back into its roles (to evaluate or checkpoint it there), `runs()`
    returns them."""

    def __init__(self, cfg: Config, learners: Sequence[GeneratorLearner], discriminators: Sequence[DiscriminatorTrainer],
                 rollout_generators: Sequence[torch.Generator], *, adv_lrs: Sequence[float] | None = None,
                 d_lrs: Sequence[float] | None = None):
        K = len(learners)
        self.cfg, self.learners, self.discriminators = cfg, list(learners), list(discriminators)
        self.theta = StackedLSTMPolicy([r.generator for r in learners])
        self.beta = StackedLSTMPolicy([r.rollout_policy for r in learners])
        self.beta.requires_grad_(False)
        self.d = StackedDiscriminator([r.discriminator for r in discriminators])
        self.g_opt = StackedAdam(list(self.theta.parameters()), adv_lrs or [cfg.generator.adv_lr] * K)
        self.g_opt.take_over(self.theta, [r.generator for r in learners], [r.pg_opt for r in learners])
        self.d_opt = StackedAdam(list(self.d.parameters()), d_lrs or [cfg.discriminator.lr] * K)
        self.d_opt.take_over(self.d, [r.discriminator for r in discriminators], [r.opt for r in discriminators])
        self.g_rngs = [r.rng for r in learners]
        self.d_rngs = [r.rng for r in discriminators]
        self.rollout_rngs = list(rollout_generators)

    def iteration(self, real: Tensor | Sequence[Tensor]) -> dict[str, Tensor]:
        """One iteration of every run, D against each run's real sequences `real` (K, S', T), or
        against `real[i]` in D step i (a fresh sample a round, train.num_real). Returns each
        run's metrics, (K,) each."""
        cfg, tc = self.cfg, self.cfg.train
        B = cfg.generator.batch_size
        pg_loss = reward_mean = 0.0
        for _ in range(tc.g_steps):
            seqs = self.theta.sample(B, self.g_rngs)                                       # (K, B, T)
            rewards = mc_rewards(self.beta, self.d, seqs, cfg.rollout.num_rollouts, self.rollout_rngs,
                                 stride=cfg.rollout.stride)
            pg_loss = pg_loss + policy_gradient_step(self.theta, self.g_opt, seqs, rewards,
                                                     cfg.generator.grad_clip) / tc.g_steps
            reward_mean = reward_mean + rewards.mean((1, 2)) / tc.g_steps
        blend(self.beta, self.theta, cfg.rollout.update_rate)
        metrics = {"gen/pg_loss": pg_loss, "gen/reward_mean": reward_mean}
        for i in range(tc.d_steps):
            fake = self.theta.sample(tc.num_negatives, self.g_rngs)
            stats = train_discriminator(self.d, self.d_opt, real if isinstance(real, Tensor) else real[i], fake,
                                        tc.k_epochs, cfg.discriminator.batch_size, cfg.discriminator.l2_reg,
                                        self.d_rngs)
            metrics.update({"disc/loss": stats.loss, "disc/acc_real": stats.acc_real, "disc/acc_fake": stats.acc_fake})
        return metrics

    @torch.no_grad()
    def give_back(self) -> None:
        """Each run's G_θ, β and D weights and its two Adams' state into its own roles (their
        random streams are shared already): the roles then hold what K separate runs would."""
        for k, (learner, disc) in enumerate(zip(self.learners, self.discriminators)):
            for model, stacked in ((learner.generator, self.theta), (learner.rollout_policy, self.beta),
                                   (disc.discriminator, self.d)):
                own = model.state_dict()  # tensors that share the model's storage
                for name, value in stacked.unstacked(k).items():
                    own[name].copy_(value)
        self.g_opt.give_back(self.theta, [r.generator for r in self.learners], [r.pg_opt for r in self.learners])
        self.d_opt.give_back(self.d, [r.discriminator for r in self.discriminators],
                             [r.opt for r in self.discriminators])

    def runs(self) -> list[dict[str, dict[str, Tensor]]]:
        """Each run's weights: G_θ, β and D state dicts."""
        return [{"generator": self.theta.unstacked(k), "rollout_policy": self.beta.unstacked(k),
                 "discriminator": self.d.unstacked(k)} for k in range(self.theta.K)]
