"""The relaxed GANs' pieces: RelGAN's relational-memory generator and discriminator, Gumbel-softmax
sampling, the losses, the temperature schedule, and G and D steps that learn."""

import math

import pytest
import torch
import torch.nn.functional as F

from seqgan_ray.algorithms.relaxed import discriminator_objective, generator_objective, inverse_temperature
from seqgan_ray.config import ConfigError, config_from_dict, validate
from seqgan_ray.kernels import maxconv
from seqgan_ray.losses import relaxed_discriminator_loss, relaxed_generator_loss
from seqgan_ray.models.discriminator import RelGANDiscriminator
from seqgan_ray.models.relational import RelationalMemoryPolicy, _joint_layer_norm
from seqgan_ray.roles import DiscriminatorTrainer, GeneratorLearner, make_discriminator, make_generator
from tests.conftest import TINY

RELGAN = {"generator": {"kind": "relational_memory", "head_size": 4, "num_heads": 2, "mem_slots": 2},
          "discriminator": {"kind": "relgan", "emb_dim": 8, "num_rep": 4, "filter_sizes": [2, 3],
                            "num_filters": [6, 6]},
          "train": {"method": "relgan", "pretrain_d_rounds": 0}}


def relgan_cfg(**extra):
    sections = {k: dict(v) for k, v in TINY.items()}
    for name, values in {**RELGAN, **extra}.items():
        sections[name] = {**sections.get(name, {}), **values}
    return config_from_dict(sections)


def test_relational_memory_step_by_step_equals_teacher_forcing():
    g = RelationalMemoryPolicy(30, 6, 7, mem_slots=2, head_size=4, num_heads=3)
    seqs = g.sample(5, generator=torch.Generator().manual_seed(0))
    h, _ = g.hidden_states(seqs)
    state, tok = g.initial_state(5), torch.zeros(5, dtype=torch.long)
    for t in range(7):
        state = g.step(tok, state)
        assert torch.allclose(state[0], h[:, t], atol=1e-6)
        tok = seqs[:, t]
    logp = g.log_probs(seqs)
    manual = torch.log_softmax(g.logits(h.reshape(-1, g.hidden_dim)), -1).gather(1, seqs.reshape(-1, 1))
    assert torch.allclose(logp.reshape(-1), manual.squeeze(1), atol=1e-5)


def test_relational_memory_starts_as_the_identity_and_normalises_slots_and_units_together():
    g = RelationalMemoryPolicy(10, 4, 3, mem_slots=3, head_size=2, num_heads=2)
    mem = g.initial_state(2)[0].view(2, 3, 4)
    assert torch.equal(mem[0], torch.eye(3, 4))
    x, gain, bias = torch.randn(2, 3, 4), torch.randn(4), torch.randn(4)
    expected = F.layer_norm(x, (3, 4), gain.expand(3, 4), bias.expand(3, 4), eps=1e-12)
    assert torch.allclose(_joint_layer_norm(x, gain, bias), expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "relational_memory"])
def test_gumbel_max_tokens_are_samples_of_the_policy(kind):
    """The tokens of sample_relaxed follow softmax(logits): first-token frequencies over 20,000
    rows match the policy's distribution; soft tokens are distributions whose argmax is the token."""
    cfg = relgan_cfg(data={**TINY["data"], "vocab_size": 5})
    cfg.generator.kind = kind
    g = make_generator(cfg, 0)
    with torch.no_grad():
        g.W_out.mul_(20.0)  # a peaked distribution, far from uniform
        toks, soft = g.sample_relaxed(20000, 3.0, generator=torch.Generator().manual_seed(1))
        first = g.logits(g.step(torch.zeros(1, dtype=torch.long), g.initial_state(1))[0]).softmax(-1)[0]
    freq = torch.bincount(toks[:, 0], minlength=5).float() / 20000
    assert (freq - first).abs().max() < 0.015, (freq, first)
    assert torch.allclose(soft.sum(-1), torch.ones(20000, 8), atol=1e-5)
    assert torch.equal(soft.argmax(-1), toks)


def test_soft_tokens_after_the_end_token_are_pad():
    cfg = relgan_cfg(data={**TINY["data"], "eos_token": 2})
    g = make_generator(cfg, 0)
    with torch.no_grad():
        g.b_out[2] = 6.0  # ends early, often
        toks, soft = g.sample_relaxed(64, 1.0, generator=torch.Generator().manual_seed(0))
    after = toks == 0
    after[:, 0] = False
    assert after.any()
    assert torch.equal(soft[after], F.one_hot(toks[after], cfg.data.vocab_size).float())


def _relgan_d_by_conv2d(d, x):
    """RelGAN's D as its reference computes it: conv2d over the (T, E) embedding image with
    stride rep_dim, ReLU, max over time (amax), highway, fc, out; dropout off."""
    emb = (x @ d.embedding if x.is_floating_point() else d.embedding[x])[:, None]  # (B, 1, T, E)
    pooled = []
    for k, w, b in zip(d.filter_sizes, d.filter_w, d.filter_b):
        kernel = w.view(-1, 1, k, d.rep_dim)  # (F, 1, k, rep_dim): window j, unit e at j·rep_dim + e
        out = F.relu(F.conv2d(emb, kernel, b, stride=(1, d.rep_dim)))  # (B, F, T', num_rep)
        pooled.append(out.amax(dim=2).permute(0, 2, 1))  # (B, num_rep, F)
    feat = torch.cat(pooled, dim=2).reshape(x.shape[0] * d.num_rep, -1)
    h, t = (feat @ d.highway).chunk(2, dim=1)
    gate = torch.sigmoid(t)
    return d.out(d.fc(gate * F.relu(h) + (1 - gate) * feat)).view(x.shape[0], d.num_rep)


@pytest.mark.parametrize("block_bytes", [1 << 20, 64])
def test_relgan_discriminator_gradients_equal_its_conv2d_reference(monkeypatch, block_bytes):
    """The thin windows' blocked path (k·rep_dim of 2-3, here in one block or in blocks of a
    row or two) against conv2d + amax, gradients of every parameter and of the soft input,
    with repeated tokens so that maxima tie."""
    monkeypatch.setattr(maxconv, "BLOCK_BYTES", block_bytes)
    d = RelGANDiscriminator(20, 6, emb_dim=8, num_rep=4, filter_sizes=[2, 3], num_filters=[5, 7],
                            dropout=0.0).double()
    toks = torch.tensor([[3] * 6, [1, 2] * 3, [0, 5, 9, 5, 9, 5], [7, 8, 9, 10, 11, 12]])
    soft = torch.softmax(torch.randn(4, 6, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(1)),
                         -1).requires_grad_(True)
    weights = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    params = list(d.parameters())
    for x, inputs in ((toks, params), (soft, params + [soft])):
        ours, ref = d.score(x), _relgan_d_by_conv2d(d, x)
        torch.testing.assert_close(ours, ref)
        for a, b in zip(torch.autograd.grad((ours * weights).sum(), inputs),
                        torch.autograd.grad((ref * weights).sum(), inputs)):
            torch.testing.assert_close(a, b)


def test_relgan_discriminator_in_bfloat16_follows_float32(tiny_cfg):
    """discriminator.precision reaches RelGAN's D (it was once ignored there): bfloat16
    products, float32 parameters and gradients, scores and gradients near float32's."""
    cfg = config_from_dict({**{k: dict(v) for k, v in TINY.items()}, **RELGAN})
    cfg.discriminator.precision = "bfloat16"
    validate(cfg)
    d16 = make_discriminator(cfg, 0)
    assert isinstance(d16, RelGANDiscriminator) and d16.compute_dtype == torch.bfloat16
    d32 = RelGANDiscriminator(cfg.data.vocab_size, cfg.data.seq_len, emb_dim=8, num_rep=4, filter_sizes=[2, 3],
                              num_filters=[6, 6], dropout=0.0, seed=0)
    d16.dropout = 0.0
    d32.load_state_dict(d16.state_dict())
    toks = torch.randint(0, cfg.data.vocab_size, (16, cfg.data.seq_len), generator=torch.Generator().manual_seed(0))
    s16, s32 = d16.score(toks), d32.score(toks)
    assert s16.dtype == torch.float32 and not torch.equal(s16, s32)
    torch.testing.assert_close(s16, s32, atol=0.05, rtol=0.05)
    g16 = torch.autograd.grad(s16.sum(), list(d16.parameters()))
    g32 = torch.autograd.grad(s32.sum(), list(d32.parameters()))
    for a, b in zip(g16, g32):
        assert a.dtype == torch.float32
        assert (a - b).norm() <= 0.05 * b.norm() + 1e-4


def test_relgan_discriminator_convolves_each_representation_with_the_same_filters():
    d = RelGANDiscriminator(20, 6, emb_dim=8, num_rep=4, filter_sizes=[2, 3], num_filters=[5, 7], dropout=0.0)
    toks = torch.randint(0, 20, (3, 6))
    with torch.no_grad():
        emb = d.embedding[toks][:, None]  # (B, 1, T, E): TF's NHWC as NCHW
        pooled = []
        for k, w, b in zip(d.filter_sizes, d.filter_w, d.filter_b):
            kernel = w.view(-1, 1, k, d.rep_dim)  # (F, 1, k, rep_dim): window j, unit e at j·rep_dim + e
            out = F.relu(F.conv2d(emb, kernel, b, stride=(1, d.rep_dim)))  # (B, F, T', num_rep)
            pooled.append(out.amax(dim=2).permute(0, 2, 1))  # (B, num_rep, F)
        feat = torch.cat(pooled, dim=2).reshape(3 * 4, -1)
        h, t = (feat @ d.highway).chunk(2, dim=1)
        gate = torch.sigmoid(t)
        expected = d.out(d.fc(gate * F.relu(h) + (1 - gate) * feat)).view(3, 4)
        assert torch.allclose(d.score(toks), expected, atol=1e-5)
        one_hot = F.one_hot(toks, 20).float()
        assert torch.allclose(d.score(one_hot), expected, atol=1e-5)  # soft input, same path


def test_losses_have_the_references_signs():
    real, fake = torch.tensor([[2.0]]), torch.tensor([[-1.0]])
    assert relaxed_discriminator_loss("rsgan", real, fake).item() == pytest.approx(math.log1p(math.exp(-3.0)))
    assert relaxed_generator_loss("rsgan", real, fake).item() == pytest.approx(math.log1p(math.exp(3.0)))
    assert relaxed_discriminator_loss("standard", real, fake).item() == pytest.approx(
        math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0)))
    assert relaxed_generator_loss("standard", real, fake).item() == pytest.approx(math.log1p(math.exp(1.0)))


def test_the_temperature_schedules():
    cfg = relgan_cfg()
    cfg.train.adv_iterations, cfg.relaxed.temperature_max = 3000, 100.0
    assert inverse_temperature(cfg, 0, 1.0) == 1.0
    assert inverse_temperature(cfg, 2999, 1.0) == pytest.approx(100.0)  # default N: the last iteration
    cfg.relaxed.temperature_steps = 5000  # the public codes' N
    assert inverse_temperature(cfg, 2999, 1.0) == pytest.approx(100.0 ** (2999 / 5000))
    assert inverse_temperature(cfg, 2500, 0.2) == pytest.approx(0.2 * 500 ** 0.5)
    cfg.relaxed.schedule = "lin"
    assert inverse_temperature(cfg, 4999, 1.0) == pytest.approx(100.0)
    assert inverse_temperature(cfg, 2, 1.0) == pytest.approx(1 + 2 / 4999 * 99)
    cfg.relaxed.schedule = "constant"
    assert inverse_temperature(cfg, 0, 1.0) == 100.0
    cfg.relaxed.temperature_steps = 0
    cfg.relaxed.schedule, cfg.train.adv_iterations = "exp", 2  # the shortest runs: β_0 first, β_max last
    assert [inverse_temperature(cfg, n, 0.5) for n in (0, 1)] == [0.5, pytest.approx(100.0)]
    cfg.relaxed.schedule = "lin"  # RelGAN's lin reaches β_max at n = N − 1: here at once
    assert [inverse_temperature(cfg, n, 0.5) for n in (0, 1)] == [100.0, 100.0]
    cfg.train.adv_iterations = 1
    for schedule in ("exp", "lin"):
        cfg.relaxed.schedule = schedule
        assert inverse_temperature(cfg, 0, 0.5) == 100.0


@pytest.mark.parametrize("feed", ["hard", "soft", "straight_through"])
@pytest.mark.parametrize("kind", ["lstm", "relational_memory"])
def test_generator_steps_through_the_critic_raise_what_it_scores(kind, feed):
    """A critic that scores the share of token 3 in the soft tokens: G's adversarial steps
    (gradients through the Gumbel-softmax) raise token 3's share in G's samples."""
    cfg = relgan_cfg()
    cfg.generator.kind, cfg.generator.adv_lr = kind, 0.05

    class TokenCritic(torch.nn.Module):
        def score(self, x, generator=None):
            probs = x if x.is_floating_point() else F.one_hot(x, cfg.data.vocab_size).float()
            return 20.0 * probs[..., 3].mean(1, keepdim=True)

    learner = GeneratorLearner(cfg, 0)
    learner.critic = TokenCritic()
    before = float((learner.sample(2000) == 3).float().mean())
    real = learner.sample(16)
    for _ in range(15):
        learner.adversarial_step(generator_objective, real, 2.0, "standard", feed)
    after = float((learner.sample(2000) == 3).float().mean())
    assert after > 3 * before and after > 0.2, (before, after)


def test_discriminator_steps_learn_to_tell_real_from_generated():
    cfg = relgan_cfg()
    cfg.discriminator.lr = 1e-2
    learner, disc = GeneratorLearner(cfg, 0), DiscriminatorTrainer(cfg, 10)
    disc.set_opponent(learner.weights())
    real = torch.arange(cfg.data.vocab_size).repeat(4)[:16 * 8].view(16, 8) % 5  # tokens 0-4 only
    losses = [disc.adversarial_step(discriminator_objective, real, 5.0, "rsgan", "hard") for _ in range(60)]
    assert losses[0] > 0.6 and sum(losses[-5:]) / 5 < 0.2, losses


def test_relgan_discriminator_is_refused_where_it_cannot_train():
    cfg = relgan_cfg()
    validate(cfg)
    cfg.train.method = "seqgan"
    with pytest.raises(ConfigError, match="discriminator.kind: relgan"):
        validate(cfg)
    cfg = relgan_cfg()
    cfg.train.pretrain_d_rounds = 3
    with pytest.raises(ConfigError, match="pretrain_d_rounds"):
        validate(cfg)
    cfg = relgan_cfg()
    cfg.discriminator.num_rep = 3
    with pytest.raises(ConfigError, match="num_rep"):
        validate(cfg)
    cfg = relgan_cfg()
    cfg.relaxed.loss = "wgan"
    with pytest.raises(ConfigError, match="relaxed.loss.*rsgan, standard"):
        validate(cfg)


def test_straight_through_feeds_the_sampled_token_forward_and_the_soft_token_backward():
    """feed straight_through: the same tokens and soft tokens as hard (the forward pass reads the
    sampled token), but gradients that also run through the fed-back inputs, which hard cuts."""
    cfg = relgan_cfg()
    cfg.generator.kind = "lstm"
    g = make_generator(cfg, 0)
    out = {}
    for feed in ("hard", "straight_through", "soft"):
        g.zero_grad()
        toks, soft = g.sample_relaxed(32, 2.0, feed=feed, generator=torch.Generator().manual_seed(3))
        soft[:, -1, 3].sum().backward()  # the last step's share of token 3
        out[feed] = toks, soft.detach(), g.W_out.grad.clone(), g.embedding.grad.clone()
    (t_hard, s_hard, w_hard, e_hard), (t_st, s_st, w_st, e_st) = out["hard"], out["straight_through"]
    assert torch.equal(t_hard, t_st) and torch.equal(s_hard, s_st)
    assert not torch.allclose(w_hard, w_st) and not torch.allclose(e_hard, e_st)


def test_the_trained_samplers_oracle_nll_is_logged_beside_the_policys(tmp_path):
    """eval/sampler_oracle_nll scores the tokens of the sampler G is trained through: with feed
    hard they are the policy's own samples (the same tokens sample_relaxed draws), and a gsgan
    run logs it at every adversarial evaluation and in its summary."""
    from seqgan_ray.algorithms.relaxed import GSGAN
    from seqgan_ray.tasks.synthetic import load_task
    from seqgan_ray.trainer import local_roles, train

    cfg = config_from_dict({**{k: dict(v) for k, v in TINY.items()}, "train": {**TINY["train"], "method": "gsgan"}})
    task = load_task(cfg.data)
    learner = GeneratorLearner(cfg, 0)
    seqs = learner.sample_relaxed(300, 1.0, feed="hard", seed=5, chunk=128)
    again, _ = learner.generator.sample_relaxed(128, 1.0, feed="hard", generator=torch.Generator().manual_seed(5))
    assert seqs.shape == (300, 8) and torch.equal(seqs[:128], again[:128])

    class Ctx:
        pass
    ctx = Ctx()
    ctx.cfg, ctx.task, ctx.learner, ctx.phase = cfg, task, learner, "pretrain_g"
    assert GSGAN().evaluate(ctx, 1, None) == {}  # the sampler's NLL-oracle: adversarial iterations only
    ctx.phase = "adversarial"
    m = GSGAN().evaluate(ctx, 1, None)
    expected = task.oracle.sequence_nll(learner.sample_relaxed(cfg.train.eval_samples, 0.2, feed="soft",
                                                               seed=cfg.run.seed + 1)).mean().item()
    assert m["eval/sampler_oracle_nll"] == pytest.approx(expected)

    result = train(cfg, task, local_roles(cfg), tmp_path / "run")
    assert math.isfinite(result.summary["eval_after_adversarial"]["eval/sampler_oracle_nll"])


def test_relaxed_feed_takes_straight_through_and_refuses_others():
    assert relgan_cfg(relaxed={"feed": "straight_through"}).relaxed.feed == "straight_through"
    with pytest.raises(ConfigError, match="relaxed.feed.*straight_through"):
        relgan_cfg(relaxed={"feed": "straight"})


def l2_effect(cfg, objective, *args) -> tuple[float, float]:
    """(loss with cfg's discriminator.l2_reg − loss with 0, λ·(‖W‖² + ‖b‖²)/2 of D's output layer)
    for one adversarial D step from the same weights and random stream."""
    from seqgan_ray.losses import output_l2

    losses, penalties = [], []
    for l2 in (cfg.discriminator.l2_reg, 0.0):
        cfg.discriminator.l2_reg = l2
        learner, disc = GeneratorLearner(cfg, 0), DiscriminatorTrainer(cfg, 10)
        disc.set_opponent(learner.weights())
        penalties.append(l2 * output_l2(disc.discriminator.out.weight, disc.discriminator.out.bias).item())
        losses.append(disc.adversarial_step(objective, learner.sample(16), *args))
    return losses[0] - losses[1], penalties[0]


def test_relaxed_discriminator_steps_apply_the_l2_penalty():
    """discriminator.l2_reg weighs D's output layer in the relaxed GANs' D steps too (it was
    silently ignored there): the step's loss grows by exactly λ·(‖W‖² + ‖b‖²)/2."""
    cfg = relgan_cfg(discriminator={**RELGAN["discriminator"], "l2_reg": 3.0})
    gap, penalty = l2_effect(cfg, discriminator_objective, 1.0, "rsgan", "hard")
    assert penalty > 0 and gap == pytest.approx(penalty, rel=1e-4)


@pytest.mark.parametrize("kind", ["lstm", "relational_memory"])
def test_hard_feed_cuts_only_the_sampled_tokens_path_not_the_recurrence(kind):
    """With feed hard the last step's soft token still has a gradient with respect to the state
    G started from, T steps back: the recurrent state is not detached (as in RelGAN's code);
    only the sampled token's path is cut."""
    cfg = relgan_cfg()
    cfg.generator.kind = kind
    g = make_generator(cfg, 0)
    state = tuple(s.clone().requires_grad_(True) for s in g.initial_state(8))  # (h, c) or (memory,)
    _, soft = g.sample_relaxed(8, 1.0, feed="hard", generator=torch.Generator().manual_seed(0), initial=state)
    soft[:, -1, 3].sum().backward()
    assert state[0].grad is not None and state[0].grad.abs().sum() > 0
