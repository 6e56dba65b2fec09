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
from ..kernels.linear import Linear, linear
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
                 dropout: float = 0.25, precision: str = "float32", seed: int = 0, latent_dim: int = 0):
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if not filter_sizes:
            filter_sizes, num_filters = paper_filters(seq_len)
        self.seq_len, self.filter_sizes = seq_len, list(filter_sizes)
        self.precision = precision
        self.embedding = nn.Embedding(vocab_size, emb_dim)
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
        emb = self.embed_soft(x) if x.is_floating_point() else self.embedding(x)  # (B, T, E)
        return self.features_from_embeddings(emb)

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
        return probs @ self.embedding.weight

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
        w, b = self.highway.weight, self.highway.bias
        dt = self.compute_dtype
        hw = Linear.apply(feat.to(dt), w.to(dt), b.to(dt))
        h, t = hw.to(feat.dtype).chunk(2, dim=1)
        gate = torch.sigmoid(t)
        feat = gate * F.relu(h) + (1.0 - gate) * feat  # highway
        if self.training:
            feat = dropout(feat, self.dropout, generator)
        return self.out(feat)

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
        x = self.embedding(seqs).to(dt)
        prefix_max = [linear(windows(x, k), w).view(B, T - k + 1, -1).cummax(dim=1).values
                      for k, w, _ in filters]  # [k]: (B, T', F_k), max over windows starting <= s
        out = torch.empty(P, N * B, dtype=torch.float32, device=seqs.device)
        rows = completions.view(P, N * B, T)
        which = torch.arange(N * B, device=seqs.device) % B  # row (n, b) -> b
        for row, t in enumerate(lengths):
            for i in range(0, N * B, chunk_rows):
                x = self.embedding(rows[row, i:i + chunk_rows]).to(dt)
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
    """

    def __init__(self, vocab_size: int, seq_len: int, *, emb_dim: int = 64, num_rep: int = 64,
                 filter_sizes: list[int] | None = None, num_filters: list[int] | None = None,
                 dropout: float = 0.25, seed: int = 0):
        super().__init__()
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

    def score(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Logits (B, num_rep) for tokens `x` (B, T) or soft tokens (B, T, V)."""
        emb = x @ self.embedding if x.is_floating_point() else self.embedding[x]   # (B, T, E)
        B, T, _ = emb.shape
        reps = emb.view(B, T, self.num_rep, self.rep_dim).transpose(1, 2).reshape(B * self.num_rep, T, -1)
        best = MaxOverTimeConvs.apply(reps, reps.dtype, tuple(self.filter_sizes), torch.is_grad_enabled(),
                                      *self.filter_w)
        feat = F.relu(best + torch.cat(list(self.filter_b)))                       # (B·num_rep, F)
        h, t = (feat @ self.highway).chunk(2, dim=1)
        gate = torch.sigmoid(t)
        feat = gate * F.relu(h) + (1.0 - gate) * feat
        return self.out(self.fc(dropout(feat, self.dropout, generator))).view(B, self.num_rep)
