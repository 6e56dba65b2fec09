"""D_φ: the paper's CNN discriminator (Section 4 and Appendix), written as window matmuls.

Embedding (V, E) -> for each window size k: a "valid" convolution over time with F_k maps,
ReLU, max over time -> concatenate (F = Σ F_k) -> one highway layer -> dropout -> 2 logits.
Class 1 is "real"; the reward is P(real).

Each convolution is one matmul of the windows (B·T', k·E) by the filters (F_k, k·E)
(`MaxOverTimeConvs`: every window size in one autograd function). Windows are stored
time-major (index j·E + e for token j of the window, embedding unit e), so every window is one
contiguous run of the (B, T, E) embeddings and gathering them is a plain copy. Bias and ReLU
commute with the max over time, so they are applied to the (B, F_k) maxima, not to all
B·T'·F_k outputs; the backward pass puts each gradient only at its maximum's position.
`precision="bfloat16"` runs the convolutions and the highway layer in bfloat16 with float32
weights, gradients and optimizer state (on this project's 2-core AVX-512 machine, against
float32 through oneDNN: scoring rollouts 1.6x faster, a training step 1.1x; see
docs/performance.md). The highway's transform and gate are one fused (F, 2F) linear layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import PRECISIONS
from ..kernels.linear import Linear, affine, linear
from ..kernels.maxconv import MaxOverTimeConvs, windows

# The paper's discriminator for T = 20 (window size, feature maps).
PAPER_FILTERS = [(1, 100), (2, 200), (3, 200), (4, 200), (5, 200), (6, 100), (7, 100),
                 (8, 100), (9, 100), (10, 100), (15, 160), (20, 160)]


def paper_filters(seq_len: int) -> tuple[list[int], list[int]]:
    """The paper's window sizes and map counts for sequences of length `seq_len`.

    Windows longer than the sequence are dropped. For T > 20 the list goes on the way the
    paper's Table 5 does for its longer sequences: a window of 160 maps every 10 tokens,
    ending with one that spans the whole sequence.
    """
    pairs = [(k, n) for k, n in PAPER_FILTERS if k <= seq_len]
    pairs += [(k, 160) for k in range(30, seq_len + 1, 10)]
    if seq_len > 20 and pairs[-1][0] != seq_len:
        pairs.append((seq_len, 160))
    return [k for k, _ in pairs], [n for _, n in pairs]


def dropout(x: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    """Inverted dropout of `x` with drop probability `p`, its mask drawn from `generator`
    (rand < keep: 3x faster than bernoulli_ on CPU)."""
    if p <= 0:
        return x
    keep = 1.0 - p
    return x * (torch.rand(x.shape, generator=generator, device=x.device) < keep) / keep


def bf16_supported(device: torch.device | str = "cpu") -> bool:
    """Whether bfloat16 matmuls run natively (AVX-512 BF16 / AMX on CPU, Ampere+ on GPU)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class Discriminator(nn.Module):
    def __init__(self, vocab_size: int, seq_len: int, *, emb_dim: int = 64,
                 filter_sizes: list[int] | None = None, num_filters: list[int] | None = None,
                 dropout: float = 0.25, precision: str = "float32", padding_row: bool = False, seed: int = 0,
                 latent_dim: int = 0):
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if not filter_sizes:
            filter_sizes, num_filters = paper_filters(seq_len)
        self.seq_len, self.filter_sizes = seq_len, list(filter_sizes)
        self.precision = precision
        # padding_row: LeakGAN's D, which also reads unfinished sentences, their unwritten
        # positions -1: its embedding has a row for -1 first, and token y is row y + 1.
        self.shift = int(padding_row)
        self.embedding = nn.Embedding(vocab_size + self.shift, emb_dim)
        # Filters (F_k, k * E), index [f, j * E + e]: token j of the window, embedding unit e.
        self.filter_w = nn.ParameterList(nn.Parameter(torch.empty(n, k * emb_dim))
                                         for k, n in zip(filter_sizes, num_filters))
        self.filter_b = nn.ParameterList(nn.Parameter(torch.empty(n)) for n in num_filters)
        total = sum(num_filters)
        self.highway = nn.Linear(total, 2 * total)  # [transform | gate]
        self.dropout = dropout
        self.out = nn.Linear(total, 2)
        # TextGAN: ẑ = tanh(V·σ(W·f + b) + c) from the pooled features f, the authors' `recon`
        # MLP (theano/model/text_gan.py, lines 260-263; mlp_layer.py, mlp_layer_tanh), Z units wide
        self.recon = (nn.Sequential(nn.Linear(total, latent_dim), nn.Sigmoid(), nn.Linear(latent_dim, latent_dim),
                                    nn.Tanh()) if latent_dim else None)
        self.reset_parameters(torch.Generator().manual_seed(seed))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The reference code's init: embeddings U(-1, 1), conv N(0, 0.1) truncated, bias 0.1."""
        with torch.no_grad():
            nn.init.uniform_(self.embedding.weight, -1.0, 1.0, generator=generator)
            for w, b in zip(self.filter_w, self.filter_b):
                nn.init.trunc_normal_(w, std=0.1, a=-0.2, b=0.2, generator=generator)
                b.fill_(0.1)
            # highway: tf.get_variable's defaults (Glorot uniform, zero bias), per half
            for half in self.highway.weight.chunk(2, dim=0):
                nn.init.xavier_uniform_(half, generator=generator)
            self.highway.bias.zero_()
            nn.init.trunc_normal_(self.out.weight, std=0.1, a=-0.2, b=0.2, generator=generator)
            self.out.bias.fill_(0.1)
            for layer in self.recon[::2] if self.recon is not None else ():  # the authors': U(−0.01, 0.01), 0.01
                nn.init.uniform_(layer.weight, -0.01, 0.01, generator=generator)
                layer.bias.fill_(0.01)

    @property
    def compute_dtype(self) -> torch.dtype:
        """bfloat16 if so configured, else the parameters' own dtype."""
        return torch.bfloat16 if self.precision == "bfloat16" else self.embedding.weight.dtype

    def features(self, x: Tensor) -> Tensor:
        """Max-over-time pooled convolution features of tokens `x` (B, T) or soft tokens (B, T, V).
        Returns (B, F)."""
        return self.features_from_embeddings(self.embed_soft(x) if x.is_floating_point() else self.embed(x))

    def embed(self, tokens: Tensor) -> Tensor:
        """The embeddings (B, T, E) of `tokens` (B, T) (with padding_row, -1 included)."""
        return self.embedding(tokens + self.shift if self.shift else tokens)

    @property
    def feature_dim(self) -> int:
        """F, the number of pooled features (the sum of the feature maps)."""
        return self.highway.in_features

    def leaked_features(self, tokens: Tensor) -> Tensor:
        """What LeakGAN's D leaks to its generator (B, F): the pooled features of `tokens` (B, T),
        a sentence so far with -1 at the positions not yet written, after the highway layer
        (the reference's dropout there keeps everything)."""
        return self.highway_layer(self.features(tokens))

    def score(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The log-odds of "real", (B, 1), for tokens `x` (B, T) or soft tokens (B, T, V): the
        one logit the relaxed GANs' losses take (algorithms/relaxed.py)."""
        return self.score_and_features(x, generator=generator)[0]

    def score_and_features(self, x: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """`score` (B, 1) and the pooled features (B, F) it was computed from (before the highway
        and dropout): what TextGAN's feature matching compares, in one pass."""
        feat = self.features(x)
        logits = self.classify(feat, generator=generator)
        return (logits[:, 1] - logits[:, 0])[:, None], feat

    def embed_soft(self, probs: Tensor) -> Tensor:
        """The embeddings (B, T, E) of soft tokens `probs` (B, T, V), e.g. a Gumbel-softmax
        generator's relaxed one-hots: each position's probability-weighted mix of embeddings."""
        return probs @ self.embedding.weight[self.shift:]

    def features_from_embeddings(self, x: Tensor) -> Tensor:
        """The pooled features (B, F) of embedded sequences `x` (B, T, E): token ids looked up,
        or soft tokens mixed (`embed_soft`), through which gradients reach a generator."""
        best = MaxOverTimeConvs.apply(x, self.compute_dtype, tuple(self.filter_sizes),
                                      torch.is_grad_enabled(), *self.filter_w)
        return F.relu(best + torch.cat(list(self.filter_b)))  # bias and ReLU after the max

    def forward(self, tokens: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Class logits (B, 2) for `tokens` (B, T); class 1 is real. In training mode dropout
        draws from `generator`, so a trainer's randomness is its own, in any process."""
        return self.classify(self.features(tokens), generator=generator)

    def classify(self, feat: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Class logits (B, 2) from pooled features (B, F): highway, dropout, output layer."""
        feat = self.highway_layer(feat)
        if self.training:
            feat = dropout(feat, self.dropout, generator)
        return self.out(feat)

    @torch.no_grad()
    def prefix_leaked_features(self, seqs: Tensor, *, chunk_rows: int = 256) -> Tensor:
        """`leaked_features` of every prefix of `seqs` (B, T), the rest -1 (padding_row): (B, T + 1, F),
        [:, t] that of the first t tokens. Equal to scoring the T + 1 padded rows, about T/2 times
        cheaper: a window's value is a sum over its positions of W_i·e(y), so each position's
        products with every offset's filter are computed once, and a window that is written up
        to offset j (j of its k positions) is a running sum of them plus the padding's share of
        the rest. For prefix t the max runs over the windows written in full (a running max),
        those the prefix ends inside, and one all-padding window if any is left."""
        assert self.shift, "prefix features need the padding row (padding_row=True)"
        if len(seqs) > chunk_rows:
            return torch.cat([self.prefix_leaked_features(c, chunk_rows=chunk_rows) for c in seqs.split(chunk_rows)])
        B, T = seqs.shape
        x = self.embed(seqs)                                                   # (B, T, E)
        E = x.shape[-1]
        pad = self.embedding.weight[0]
        t = torch.arange(T + 1, device=seqs.device)
        parts = []
        for k, w, bias in zip(self.filter_sizes, self.filter_w, self.filter_b):
            n = w.shape[0]
            wk = w.view(n, k, E).permute(2, 1, 0).reshape(E, k * n)            # [e, (offset i, map f)]
            C = (x.reshape(B * T, E) @ wk).view(B, T, k, n)                    # W_i·e(y_p) for every p, i
            pad_share = (pad @ wk).view(k, n).flip(0).cumsum(0).flip(0)        # Σ_{i >= j} W_i·e(pad)
            pad_share = torch.cat([pad_share, pad_share.new_zeros(1, n)])      # j = 0..k
            S = T - k + 1                                                      # windows
            start = torch.arange(S, device=seqs.device)
            off = torch.arange(k, device=seqs.device)
            written = C[:, start[:, None] + off, off].cumsum(2)                # (B, S, k, n): first j+1 written
            best = torch.full((B, T + 1, n), float("-inf"), dtype=x.dtype, device=x.device)
            full = written[:, :, k - 1].cummax(1).values                       # best whole window so far
            done = t - k                                                       # the last whole window's start
            best[:, t >= k] = full[:, done[t >= k]]
            if k > 1:  # windows the prefix ends inside: start s = t - j, j = 1..k-1 written
                j = torch.arange(1, k, device=seqs.device)
                s = t[:, None] - j[None, :]                                    # (T + 1, k - 1)
                ok = (s >= 0) & (s < S)
                inside = written[:, s.clamp(0, S - 1), j - 1] + pad_share[j]   # (B, T + 1, k - 1, n)
                inside = inside.masked_fill(~ok[None, :, :, None], float("-inf"))
                best = torch.maximum(best, inside.max(2).values)
            best[:, t <= T - k] = torch.maximum(best[:, t <= T - k], pad_share[0])  # an all-padding window
            parts.append(F.relu(best + bias))
        return self.highway_layer(torch.cat(parts, -1).flatten(0, 1)).view(B, T + 1, -1)

    # LeakGAN's sentences written token by token: every window's value is kept (R, W), W = Σ_k n_k·S_k,
    # S_k = T − k + 1 windows of n_k maps for width k, stored map-major ([f·S_k + s]) so the max over
    # the windows reads contiguous memory. A new token changes only the k windows that contain it,
    # by W_i·(e(y) − e(-1)) at its offset i (a window's value is linear in its embeddings); the
    # leaked features are a max over the kept values: no convolution per step.

    def _widths(self):
        """(k, S_k, n_k, filters as [e, (offset i, map f)] (E, k·n_k), bias) for each window size."""
        E, T = self.embedding.weight.shape[1], self.seq_len
        for k, w, b in zip(self.filter_sizes, self.filter_w, self.filter_b):
            n = w.shape[0]
            yield k, T - k + 1, n, w.view(n, k, E).permute(2, 1, 0).reshape(E, k * n), b

    @torch.no_grad()
    def empty_windows(self, rows: int) -> Tensor:
        """The windows (rows, W) of a sentence not yet written: every position -1."""
        assert self.shift, "windows need the padding row (padding_row=True)"
        pad = self.embedding.weight[0]
        return torch.cat([(pad @ wk).view(k, n).sum(0).repeat_interleave(S) for k, S, n, wk, _ in self._widths()]
                         ).repeat(rows, 1)

    @torch.no_grad()
    def write_windows(self, windows: Tensor, tokens: Tensor, p: int) -> Tensor:
        """`windows` (R, W) after writing `tokens` (R,) at position `p` of every row, where -1 was
        (rows are written in step, as sampling and Eq. 4's rollouts do). Updates `windows` in
        place and returns it."""
        change = self.embedding(tokens + 1) - self.embedding.weight[0]          # (R, E)
        start = 0
        for k, S, n, wk, _ in self._widths():
            lo, hi = max(0, p - k + 1), min(p, S - 1)                           # the windows holding p
            if lo <= hi:  # window s holds p at offset p - s: offsets p - lo down to p - hi
                delta = (change @ wk[:, (p - hi) * n:(p - lo + 1) * n]).view(-1, hi - lo + 1, n)
                windows[:, start:start + n * S].view(-1, n, S)[:, :, lo:hi + 1] += delta.flip(1).transpose(1, 2)
            start += n * S
        return windows

    @torch.no_grad()
    def features_from_windows(self, windows: Tensor) -> Tensor:
        """`leaked_features` (R, F) of the sentences whose windows are `windows` (R, W)."""
        parts, start = [], 0
        for k, S, n, _, bias in self._widths():
            parts.append(F.relu(windows[:, start:start + n * S].view(-1, n, S).amax(-1) + bias))
            start += n * S
        return self.highway_layer(torch.cat(parts, -1))

    @torch.no_grad()
    def prefix_windows(self, seqs: Tensor) -> Tensor:
        """The windows (B, T, W) of every proper prefix of `seqs` (B, T): [:, t] of the first t tokens."""
        B, T = seqs.shape
        x = self.embed(seqs)
        E = x.shape[-1]
        pad = self.embedding.weight[0]
        t = torch.arange(T, device=seqs.device)
        parts = []
        for k, S, n, wk, _ in self._widths():
            C = (x.reshape(B * T, E) @ wk).view(B, T, k, n)                    # W_i·e(y_p)
            pad_share = (pad @ wk).view(k, n).flip(0).cumsum(0).flip(0)         # Σ_{i >= j} W_i·e(pad)
            pad_share = torch.cat([pad_share, pad_share.new_zeros(1, n)])       # j = 0..k
            start, off = torch.arange(S, device=seqs.device), torch.arange(k, device=seqs.device)
            written = torch.cat([torch.zeros_like(C[:, :S, :1]), C[:, start[:, None] + off, off].cumsum(2)], 2)
            table = written + pad_share                                         # (B, S, k + 1, n): j written
            j = (t[:, None] - start[None, :]).clamp(0, k)                       # (T, S)
            parts.append(table[:, start[None, :].expand(T, S), j].transpose(2, 3).flatten(2))  # (B, T, n·S)
        return torch.cat(parts, -1)

    def highway_layer(self, feat: Tensor) -> Tensor:
        """The highway layer over pooled features (B, F)."""
        w, b = self.highway.weight, self.highway.bias
        dt = self.compute_dtype
        hw = Linear.apply(feat.to(dt), w.to(dt), b.to(dt))
        h, t = hw.to(feat.dtype).chunk(2, dim=1)
        gate = torch.sigmoid(t)
        return gate * F.relu(h) + (1.0 - gate) * feat

    @torch.no_grad()
    def prob_real(self, tokens: Tensor, *, chunk_rows: int = 1024) -> Tensor:
        """P(real) for each row of `tokens` (R, T), scored in blocks; dropout off. Returns (R,)."""
        was_training = self.training
        self.eval()
        out = torch.cat([torch.softmax(self(tokens[i:i + chunk_rows]), dim=-1)[:, 1]
                         for i in range(0, tokens.shape[0], chunk_rows)])
        self.train(was_training)
        return out

    @torch.no_grad()
    def prob_real_rollouts(self, seqs: Tensor, completions: Tensor, lengths: list[int] | None = None, *,
                           chunk_rows: int = 1024) -> Tensor:
        """P(real) of the rollouts of Eq. 4, (L, N, B), from `seqs` (B, T) and their completions
        (L, N, B, T), where row [i, n, b] keeps seqs[b, :t] for t = lengths[i] (complete_prefixes;
        by default every length 1..T−1).

        A convolution window that lies inside the kept prefix is the same in all N completions
        of that prefix: its value is computed once per sequence (the running max over the
        windows of `seqs`), and only the windows that reach into the sampled part are computed
        per completion. At T = 20 that skips about a third of the convolution work, more for
        longer sequences. Equal to `prob_real` on every row (a test checks it).
        """
        was_training = self.training
        self.eval()
        P, N, B, T = completions.shape
        lengths = list(range(1, T)) if lengths is None else lengths
        dt = self.compute_dtype
        filters = [(k, w.to(dt), b) for k, w, b in zip(self.filter_sizes, self.filter_w, self.filter_b)]
        x = self.embed(seqs).to(dt)
        prefix_max = [linear(windows(x, k), w).view(B, T - k + 1, -1).cummax(dim=1).values
                      for k, w, _ in filters]  # [k]: (B, T', F_k), max over windows starting <= s
        out = torch.empty(P, N * B, dtype=torch.float32, device=seqs.device)
        rows = completions.view(P, N * B, T)
        which = torch.arange(N * B, device=seqs.device) % B  # row (n, b) -> b
        for row, t in enumerate(lengths):
            for i in range(0, N * B, chunk_rows):
                x = self.embed(rows[row, i:i + chunk_rows]).to(dt)
                r, feats = x.shape[0], []
                for (k, w, b), pm in zip(filters, prefix_max):
                    s0 = max(0, t - k + 1)  # the first window that reaches the sampled tokens
                    m = linear(windows(x[:, s0:], k), w).view(r, T - s0 - k + 1, -1).amax(dim=1)
                    if t >= k:  # windows 0 .. t−k lie inside the prefix
                        m = torch.maximum(m, pm[which[i:i + r], t - k])
                    feats.append(F.relu(m.to(torch.float32) + b))
                out[row, i:i + r] = torch.softmax(self.classify(torch.cat(feats, dim=1)), dim=-1)[:, 1]
        self.train(was_training)
        return out.view(P, N, B)


class RelGANDiscriminator(nn.Module):
    """RelGAN's discriminator (weilinie/RelGAN, models/rmc_vanilla.py): a CNN that reads each
    sequence through `num_rep` embedded representations and scores each one.

    The embedding (V, E) is cut into num_rep representations of E / num_rep units (the
    paper's 64 of 1). Every window size k (2, 3, 4, 5; 300 maps each) convolves k tokens of one
    representation, the same filters for all of them; ReLU and max over time, then per (row,
    representation) a highway layer (no biases, gate bias 0), dropout (always on, as in the
    reference, whose `tf.nn.dropout` has no switch), a linear layer of 100 and one logit. So a
    batch of B sequences gives B × num_rep logits, and the losses average over all of them.
    `precision="bfloat16"`: the convolutions, highway and fc layers in bfloat16, with float32
    weights, gradients and optimizer state (as SeqGAN's D).
    """

    def __init__(self, vocab_size: int, seq_len: int, *, emb_dim: int = 64, num_rep: int = 64,
                 filter_sizes: list[int] | None = None, num_filters: list[int] | None = None,
                 dropout: float = 0.25, precision: str = "float32", seed: int = 0):
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        if emb_dim % num_rep:
            raise ValueError(f"discriminator.emb_dim ({emb_dim}) must be a multiple of "
                             f"discriminator.num_rep ({num_rep})")
        filter_sizes = list(filter_sizes or [2, 3, 4, 5])
        num_filters = list(num_filters or [300] * len(filter_sizes))
        self.seq_len, self.filter_sizes, self.num_rep = seq_len, filter_sizes, num_rep
        self.rep_dim, self.dropout = emb_dim // num_rep, dropout
        self.embedding = nn.Parameter(torch.empty(vocab_size, emb_dim))
        self.filter_w = nn.ParameterList(nn.Parameter(torch.empty(n, k * self.rep_dim))
                                         for k, n in zip(filter_sizes, num_filters))
        self.filter_b = nn.ParameterList(nn.Parameter(torch.empty(n)) for n in num_filters)
        total = sum(num_filters)
        self.highway = nn.Parameter(torch.empty(total, 2 * total))  # [transform | gate], no bias
        self.fc = nn.Linear(total, 100)
        self.out = nn.Linear(100, 1)
        self.reset_parameters(torch.Generator().manual_seed(seed))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The reference's init: truncated normal (cut at 2 std) of std 1/√fan-in, the
        convolutions √(2/fan-in) (its conv2d's Glorot-like rule), biases 0."""
        def trunc(p: Tensor, std: float) -> None:
            nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std, generator=generator)

        with torch.no_grad():
            trunc(self.embedding, self.embedding.shape[0] ** -0.5)
            for k, w, b in zip(self.filter_sizes, self.filter_w, self.filter_b):
                trunc(w, (2.0 / (k * self.rep_dim)) ** 0.5)
                b.zero_()
            trunc(self.highway, self.highway.shape[0] ** -0.5)
            for layer in (self.fc, self.out):
                trunc(layer.weight, layer.weight.shape[1] ** -0.5)
                layer.bias.zero_()

    @property
    def compute_dtype(self) -> torch.dtype:
        """bfloat16 if so configured (the convolutions, the highway and fc layers), else the
        parameters' own dtype."""
        return torch.bfloat16 if self.precision == "bfloat16" else self.embedding.dtype

    def score(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Logits (B, num_rep) for tokens `x` (B, T) or soft tokens (B, T, V)."""
        emb = x @ self.embedding if x.is_floating_point() else self.embedding[x]   # (B, T, E)
        B, T, _ = emb.shape
        dt = self.compute_dtype
        reps = emb.view(B, T, self.num_rep, self.rep_dim).transpose(1, 2).reshape(B * self.num_rep, T, -1)
        best = MaxOverTimeConvs.apply(reps, dt, tuple(self.filter_sizes), torch.is_grad_enabled(), *self.filter_w)
        feat = F.relu(best + torch.cat(list(self.filter_b)))                       # (B·num_rep, F)
        # through oneDNN on CPU (2x torch.mm for these shapes), in bfloat16 if so configured
        h, t = affine(feat.to(dt), self.highway.to(dt)).to(feat.dtype).chunk(2, dim=1)
        gate = torch.sigmoid(t)
        feat = gate * F.relu(h) + (1.0 - gate) * feat
        hidden = Linear.apply(dropout(feat, self.dropout, generator).to(dt), self.fc.weight.to(dt),
                              self.fc.bias.to(dt)).to(feat.dtype)
        return self.out(hidden).view(B, self.num_rep)
