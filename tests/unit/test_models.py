"""The LSTM policy's gate equations and sampling, the oracle, and the CNN discriminator."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqgan_ray.config import DataConfig
from seqgan_ray.kernels import maxconv
from seqgan_ray.models.discriminator import Discriminator, paper_filters
from seqgan_ray.models.policy import LSTMPolicy
from seqgan_ray.tasks.synthetic import load_oracle_params, load_task, seeded_oracle
from seqgan_ray.tasks.token_file import DataError

TINY = dict(vocab_size=30, seq_len=5, oracle_emb_dim=4, oracle_hidden_dim=6, num_train=40)


def test_seeded_oracle_depends_only_on_seed():
    a, b = seeded_oracle(DataConfig(**TINY, oracle_seed=1)), seeded_oracle(DataConfig(**TINY, oracle_seed=1))
    c = seeded_oracle(DataConfig(**TINY, oracle_seed=2))
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
        assert not torch.equal(pa, pc), name
    flat = torch.cat([p.flatten() for p in a.parameters()])
    assert abs(flat.std().item() - 1.0) < 0.15  # N(0, 1), as the paper's oracle


def test_load_task_without_params_uses_seeded_oracle(tmp_path):
    cfg = DataConfig(**TINY, oracle_dir=str(tmp_path))
    task = load_task(cfg)
    assert "target_params.pkl" in task.source and "seeded" in task.source
    assert task.real.shape == (40, 5)
    assert torch.equal(task.oracle.W, seeded_oracle(cfg).W)
    always = load_task(DataConfig(**TINY, oracle_dir=""))  # empty: seeded, even with the paper's at hand
    assert "data.oracle_dir is empty" in always.source and torch.equal(always.real, task.real)


def test_a_saved_seeded_oracle_reloads_as_the_same_task(tmp_path):
    """A run saves its seeded oracle (LeakGAN's T = 40 one has no published parameters) in the
    paper's files, so that data.oracle_dir=<run>/oracle gives the very same task."""
    task = load_task(DataConfig(**TINY, oracle_dir=""))
    assert task.seeded
    task.save_oracle(tmp_path / "oracle")
    again = load_task(DataConfig(**TINY, oracle_dir=str(tmp_path / "oracle")))
    assert not again.seeded and "paper oracle" in again.source
    for (name, a), b in zip(task.oracle.named_parameters(), again.oracle.parameters()):
        assert torch.equal(a, b), name
    assert torch.equal(task.real, again.real)


def test_load_task_can_require_the_paper_oracle(tmp_path):
    with pytest.raises(DataError, match="target_params.pkl") as err:
        load_task(DataConfig(**TINY, oracle_dir=str(tmp_path), require_paper_oracle=True))
    assert str(tmp_path / "target_params.pkl") in str(err.value)


def _named_arrays(V=7, E=3, H=4, seed=0):
    """The 15 arrays of the reference code's pickle, in its order, as float64."""
    rng = np.random.default_rng(seed)
    shapes = [(V, E)] + [(E, H), (H, H), (H,)] * 4 + [(H, V), (V,)]
    return [rng.normal(0, 1, s).astype(np.float32).astype(np.float64) for s in shapes]


def _hand_log_probs(arrays, seq, start=0):
    """The reference target LSTM, one token at a time, with per-gate matrices."""
    emb, Wi, Ui, bi, Wf, Uf, bf, Wo, Uo, bo, Wc, Uc, bc, Wout, bout = arrays
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))
    h = c = np.zeros(Ui.shape[0])
    out, prev = [], start
    for y in seq:
        x = emb[prev]
        i, f, o = sig(x @ Wi + h @ Ui + bi), sig(x @ Wf + h @ Uf + bf), sig(x @ Wo + h @ Uo + bo)
        c = f * c + i * np.tanh(x @ Wc + h @ Uc + bc)
        h = o * np.tanh(c)
        logits = h @ Wout + bout
        out.append(logits[y] - np.log(np.exp(logits - logits.max()).sum()) - logits.max())
        prev = y
    return out


def test_log_probs_follow_the_reference_gate_equations(tmp_path):
    arrays = _named_arrays()
    path = tmp_path / "params.pkl"
    path.write_bytes(pickle.dumps([a.astype(np.float32) for a in arrays]))
    policy = load_oracle_params(path, seq_len=6).double()
    seqs = torch.tensor([[3, 0, 6, 6, 1, 2], [0, 0, 5, 4, 3, 1]])
    expected = torch.tensor([_hand_log_probs(arrays, s) for s in seqs.tolist()], dtype=torch.float64)
    torch.testing.assert_close(policy.log_probs(seqs), expected, rtol=0, atol=1e-12)


def _tiny_policy(dtype=torch.float64, chunk_rows=2048):
    p = LSTMPolicy(11, 5, 4, 6, start_token=2, chunk_rows=chunk_rows)
    p.reset_parameters(1.0, torch.Generator().manual_seed(5))
    return p.to(dtype)


def test_step_matches_hidden_states():
    policy = _tiny_policy()
    seqs = policy.sample(3, generator=torch.Generator().manual_seed(0))
    h_all, c_all = policy.hidden_states(seqs)
    state = policy.initial_state(3)
    tok = torch.full((3,), policy.start_token)
    for t in range(seqs.shape[1]):
        state = policy.step(tok, state)
        torch.testing.assert_close(state[0], h_all[:, t], rtol=0, atol=1e-12)
        torch.testing.assert_close(state[1], c_all[:, t], rtol=0, atol=1e-12)
        tok = seqs[:, t]
    # the logits of the step-by-step state give the same log-probabilities
    logp = torch.log_softmax(policy.logits(h_all[:, -1]), -1).gather(1, seqs[:, -1:]).squeeze(1)
    torch.testing.assert_close(logp, policy.log_probs(seqs)[:, -1])


def test_sample_shape_range_and_seeding():
    policy = _tiny_policy(torch.float32, chunk_rows=4)  # 10 rows: logits in blocks of 4, 4, 2
    draw = lambda s: policy.sample(10, generator=torch.Generator().manual_seed(s))
    a = draw(0)
    assert a.shape == (10, 6) and a.dtype == torch.long
    assert a.min() >= 0 and a.max() < 11
    assert torch.equal(a, draw(0)) and not torch.equal(a, draw(1))
    # the first token follows softmax of the first step's logits (std of a frequency ≈ 0.008)
    many = policy.sample(4000, generator=torch.Generator().manual_seed(2))
    h, _ = policy.step(torch.tensor([policy.start_token]), policy.initial_state(1))
    probs = torch.softmax(policy.logits(h)[0], -1).detach()
    freq = torch.bincount(many[:, 0], minlength=11).float() / 4000
    assert (freq - probs).abs().max() < 0.04


def test_generator_init_std_is_point_one():
    policy = LSTMPolicy(5000, 32, 32, 20)
    flat = torch.cat([p.detach().flatten() for p in policy.parameters()])
    assert abs(flat.std().item() - 0.1) < 0.002
    assert abs(flat.mean().item()) < 0.002


def test_paper_filters():
    sizes, maps = paper_filters(20)
    assert sizes == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20]
    assert maps == [100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160]
    sizes8, maps8 = paper_filters(8)
    assert sizes8 == list(range(1, 9)) and len(maps8) == 8
    sizes32, maps32 = paper_filters(32)
    assert sizes32[-1] == 32 and max(sizes32) == 32 and len(maps32) == len(sizes32)


def _disc(**kw):
    torch.manual_seed(0)
    return Discriminator(13, 7, emb_dim=5, filter_sizes=[2, 3], num_filters=[4, 3], **kw)


def test_discriminator_forward_shape():
    tokens = torch.randint(0, 13, (6, 7), generator=torch.Generator().manual_seed(0))
    assert _disc()(tokens).shape == (6, 2)
    assert Discriminator(13, 7, emb_dim=4)(tokens).shape == (6, 2)  # paper filters for T=7


def test_soft_tokens_score_as_their_ids_when_one_hot_and_pass_gradients():
    """D's features from soft tokens (a Gumbel-softmax generator's input to D): one-hot rows
    give exactly the features of the ids, and a soft row's gradient reaches its probabilities."""
    d = _disc().double()
    tokens = torch.randint(0, 13, (6, 7), generator=torch.Generator().manual_seed(0))
    onehot = F.one_hot(tokens, 13).double()
    torch.testing.assert_close(d.features_from_embeddings(d.embed_soft(onehot)), d.features(tokens),
                               rtol=0, atol=1e-12)
    probs = torch.softmax(torch.randn(6, 7, 13, dtype=torch.float64), -1).requires_grad_(True)
    d.features_from_embeddings(d.embed_soft(probs)).sum().backward()
    assert probs.grad is not None and probs.grad.abs().sum() > 0


def _conv1d_reference(d, tokens):
    """The features as conv1d + ReLU + max over time, from d's time-major filters."""
    x = d.embedding(tokens).transpose(1, 2)  # (B, E, T)
    E = x.shape[1]
    return torch.cat([F.relu(F.conv1d(x, w.view(len(w), k, E).transpose(1, 2), b)).amax(dim=-1)
                      for k, w, b in zip(d.filter_sizes, d.filter_w, d.filter_b)], dim=1)


@pytest.fixture(params=["kept", "blocked"])
def conv_path(request, monkeypatch):
    """Both ways MaxOverTimeConvs runs on CPU: every product kept for the backward pass, or
    (thin windows) rows in blocks, here of 2 rows, whose products the backward recomputes."""
    if request.param == "kept":
        monkeypatch.setattr(maxconv, "THIN_WINDOW", 0)
    else:
        monkeypatch.setattr(maxconv, "THIN_WINDOW", 1 << 20)
        monkeypatch.setattr(maxconv, "BLOCK_BYTES", 2 * 6 * 4 * 8)  # 2 rows of (T' = 6) x 4 maps, float64
    return request.param


def test_convolution_equals_conv1d_forward_and_gradients(conv_path):
    d = _disc().double()
    with torch.no_grad():  # distinct biases, some negative, so ReLU and max both matter
        for b in d.filter_b:
            b.copy_(torch.linspace(-1, 1, len(b), dtype=torch.float64))
    tokens = torch.randint(0, 13, (9, 7), generator=torch.Generator().manual_seed(3))
    weights = torch.randn(9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    ours, ref = d.features(tokens), _conv1d_reference(d, tokens)
    torch.testing.assert_close(ours, ref)
    params = [d.embedding.weight, *d.filter_w, *d.filter_b]
    for a, b in zip(torch.autograd.grad((ours * weights).sum(), params),
                    torch.autograd.grad((ref * weights).sum(), params)):
        torch.testing.assert_close(a, b)


def test_tied_maxima_share_the_gradient_as_amax_does(conv_path):
    """A row of one repeated token has equal windows everywhere: every position is a maximum,
    and each maximum's gradient counts once, split among them as conv1d + amax splits it
    (given to every tied window in full, the filter gradients would be several times too big)."""
    d = _disc().double()
    tokens = torch.tensor([[4] * 7, [1, 2] * 3 + [1], [0, 5, 9, 5, 9, 5, 3]])
    weights = torch.randn(3, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    ours, ref = d.features(tokens), _conv1d_reference(d, tokens)
    torch.testing.assert_close(ours, ref)
    params = [d.embedding.weight, *d.filter_w]
    for a, b in zip(torch.autograd.grad((ours * weights).sum(), params),
                    torch.autograd.grad((ref * weights).sum(), params)):
        torch.testing.assert_close(a, b)


def test_prob_real_in_unit_interval_and_deterministic():
    d = _disc(dropout=0.5).train()
    tokens = torch.randint(0, 13, (50, 7), generator=torch.Generator().manual_seed(4))
    assert not torch.equal(d(tokens), d(tokens))  # dropout is live in training mode
    p = d.prob_real(tokens)
    assert p.shape == (50,) and ((p >= 0) & (p <= 1)).all()
    assert torch.equal(p, d.prob_real(tokens))
    torch.testing.assert_close(p, d.prob_real(tokens, chunk_rows=7))  # blocks change rounding only
    assert d.training  # the mode is restored
    d.eval()
    torch.testing.assert_close(p, torch.softmax(d(tokens), -1)[:, 1])


def test_token_log_prob_matches_log_softmax_gather_and_its_gradients():
    from seqgan_ray.kernels.token_logprob import TokenLogProb

    g = torch.Generator().manual_seed(0)
    R, H, V = 600, 5, 11  # more rows than one block
    h, W, b = (torch.randn(*s, dtype=torch.float64, generator=g, requires_grad=True)
               for s in ((R, H), (H, V), (V,)))
    target = torch.randint(0, V, (R,), generator=g)
    weights = torch.randn(R, dtype=torch.float64, generator=g)
    ours = TokenLogProb.apply(h, W, b, target)
    grads_ours = torch.autograd.grad((ours * weights).sum(), (h, W, b))
    plain = torch.log_softmax(h @ W + b, -1).gather(1, target[:, None]).squeeze(1)
    grads_plain = torch.autograd.grad((plain * weights).sum(), (h, W, b))
    torch.testing.assert_close(ours, plain)
    for a, p in zip(grads_ours, grads_plain):
        torch.testing.assert_close(a, p)
    small = tuple(t[:4].detach().requires_grad_() if t.dim() and t.shape[0] == R else t.detach().requires_grad_()
                  for t in (h, W, b))
    assert torch.autograd.gradcheck(TokenLogProb.apply, (*small, target[:4]))
