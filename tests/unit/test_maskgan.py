"""MaskGAN's pieces: masks, the encoder's masked inputs, returns, advantages, rewards and losses
against hand computations; the models' shapes and copying of present tokens; where the
gradients go; the config checks."""

import copy

import pytest
import torch

from seqgan_ray.algorithms.maskgan import (clipped_advantages, critic_loss, discounted_returns,
                                           discriminator_loss, generator_objective, reinforce_loss,
                                           shortest_sentence_hides_nothing, token_rewards, unique_ngram_share)
from seqgan_ray.config import ConfigError, config_from_dict
from seqgan_ray.models.maskgan import MaskGANDiscriminator, MaskGANGenerator, make_mask, masked_inputs
from seqgan_ray.roles import GeneratorLearner, make_discriminator, make_generator
from tests.conftest import TINY

MASKGAN = {"train": {"method": "maskgan"}, "maskgan": {"hidden_dim": 8}}


def maskgan_sections(**extra) -> dict:
    sections = copy.deepcopy(TINY)
    for name, values in {**MASKGAN, **extra}.items():
        sections[name] = {**sections.get(name, {}), **values}
    return sections


def maskgan_cfg(**extra):
    return config_from_dict(maskgan_sections(**extra))


def test_discounted_returns_sum_the_missing_tokens_rewards_ahead():
    r = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    m = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    g = 0.5
    expected = [[sum(m[0, s] * g ** (s - t) * r[0, s] for s in range(t, 4)) for t in range(4)]]
    assert torch.allclose(discounted_returns(r, m, g), torch.tensor(expected))
    assert discounted_returns(r, m, g)[0, 1] == pytest.approx(0.5 * 3 + 0.25 * 4)  # its own reward skipped
    assert torch.equal(discounted_returns(r, m, 0.0), r * m)  # γ = 0: each token its own reward


def test_advantages_are_clipped_and_zero_on_present_tokens():
    returns = torch.tensor([[10.0, -10.0, 1.0, 3.0]])
    values = torch.tensor([[1.0, 1.0, 0.5, 3.0]])
    missing = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert torch.equal(clipped_advantages(returns, values, missing, 5.0), torch.tensor([[5.0, -5.0, 0.5, 0.0]]))


def test_rewards_are_log_d_on_missing_tokens_only():
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    missing = torch.tensor([[1.0, 0.0, 1.0]])
    r = token_rewards(logits, missing)
    assert r[0, 1] == 0 and r[0, 0] == pytest.approx(torch.log(torch.tensor(0.5)).item())
    assert r[0, 2] == pytest.approx(torch.log(torch.sigmoid(torch.tensor(-1.0))).item())


def test_reinforce_and_critic_gradients_are_the_hand_computed_ones():
    logp = torch.randn(2, 3, requires_grad=True)
    adv = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]])
    missing = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    reinforce_loss(logp, adv, missing).backward()
    assert torch.allclose(logp.grad, -adv * missing)  # present tokens: no gradient
    values = torch.randn(2, 3, requires_grad=True)
    returns = torch.randn(2, 3)
    critic_loss(values, returns, missing).backward()
    assert torch.allclose(values.grad, 2 * (values - returns).detach() * missing / missing.sum())


def test_discriminator_loss_reads_only_missing_tokens():
    missing = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    real, fake = torch.tensor([[2.0, -9.0], [9.0, 1.0]]), torch.tensor([[-1.0, 9.0], [-9.0, 0.5]])
    loss, acc_real, acc_fake = discriminator_loss(real, fake, missing)
    sp = torch.nn.functional.softplus  # −log σ(x) = softplus(−x); −log(1 − σ(x)) = softplus(x)
    expected = ((sp(-real) * missing).sum() / 2 + (sp(fake) * missing).sum() / 2) / 2
    assert loss.item() == pytest.approx(expected.item())
    assert acc_real.item() == 1.0 and acc_fake.item() == 0.5  # fake logit 0.5 at [1, 1] is called real


def test_masks_hide_the_configured_share_and_never_past_eos():
    g = torch.Generator().manual_seed(0)
    seqs = torch.randint(4, 40, (4000, 10))
    random = make_mask(seqs, 0.7, "random", generator=g)
    assert abs((~random).float().mean().item() - 0.3) < 0.01
    contiguous = make_mask(seqs, 0.5, "contiguous", generator=g)
    assert ((~contiguous).sum(1) == 5).all()  # one block of 5 of the 10 tokens
    starts = (~contiguous).int().argmax(1)
    assert set(starts.tolist()) == set(range(6))  # uniform over 0..5
    block = (~contiguous).int().diff(dim=1)
    assert ((block == 1).sum(1) <= 1).all() and ((block == -1).sum(1) <= 1).all()  # contiguous
    assert make_mask(seqs, 1.0, "random", generator=g).all() and make_mask(seqs, 1.0, "contiguous", generator=g).all()
    text = torch.tensor([[5, 6, 7, 2, 0, 0], [5, 6, 7, 8, 9, 2]] * 500)  # eos 2, then PAD
    for mode in ("random", "contiguous"):
        present = make_mask(text, 0.2, mode, eos=2, generator=g)
        assert present[:, 3:][text[:, 3:] == 2].all() and present[text == 0].all()  # eos and PAD always shown
        assert (~present[0::2, :3]).any() and (~present[1::2, 3:5]).any()


def test_encoder_input_of_a_missing_token_is_the_missing_id():
    # the reference's own example: inputs [a, b, c, d], present targets [1, 0, 1, 0] -> [a, b, <m>, d]
    inputs = torch.tensor([[10, 11, 12, 13]])
    present = torch.tensor([[True, False, True, False]])
    assert masked_inputs(inputs, present, 99).tolist() == [[10, 11, 99, 13]]


def test_generator_copies_present_tokens_and_shapes():
    cfg = maskgan_cfg(maskgan={"hidden_dim": 8, "num_layers": 2})
    G, D = make_generator(cfg, 0), make_discriminator(cfg, 1)
    assert isinstance(G, MaskGANGenerator) and isinstance(D, MaskGANDiscriminator)
    assert G.embedding.shape == (40, 8) and len(G.encoder.cells) == 2
    g = torch.Generator().manual_seed(0)
    seqs = torch.randint(0, 40, (16, 8), generator=g)
    present = make_mask(seqs, 0.5, "random", generator=g)
    filled, logp = G.infill(seqs, present, generator=g)
    assert filled.shape == logp.shape == (16, 8)
    assert torch.equal(filled[present], seqs[present]) and not torch.equal(filled, seqs)
    assert (logp <= 0).all()
    assert D(filled, present).shape == (16, 8) and D.critic_features(filled).shape == (16, 8, 8)
    assert G.sample(5, generator=g).shape == (5, 8)
    # D's logit at t reads tokens up to t only (its decoder runs forward): changing the last one
    # changes nothing before it
    other = filled.clone()
    other[:, -1] = (other[:, -1] + 1) % 40
    assert torch.allclose(D(filled, present)[:, :-1], D(other, present)[:, :-1])
    # dropout only with a stream: without one the models are deterministic
    assert torch.equal(D(filled, present), D(filled, present))
    assert not torch.equal(D(filled, present, generator=g), D(filled, present))


def test_generator_step_moves_g_and_the_critic_head_but_not_the_copy_of_d():
    cfg = maskgan_cfg(maskgan={"hidden_dim": 8, "critic_lr": 0.003})
    learner = GeneratorLearner(cfg, 0)
    learner.set_critic(make_discriminator(cfg, 5).state_dict())
    before = {k: v.clone() for k, v in learner.generator.state_dict().items()}
    d_before = {k: v.clone() for k, v in learner.critic.state_dict().items()}
    real = torch.randint(0, 40, (16, 8))
    step = learner.adversarial_step(generator_objective, real, cfg.maskgan)
    assert step.stats["gen/missing_share"] > 0 and step.stats["critic/loss"] > 0
    assert [g["lr"] for g in learner.pg_opt.param_groups] == [cfg.generator.adv_lr, 0.003]
    after = learner.generator.state_dict()
    assert not torch.equal(after["critic.weight"], before["critic.weight"])
    assert not torch.equal(after["embedding"], before["embedding"])
    assert all(torch.equal(v, learner.critic.state_dict()[k]) for k, v in d_before.items())
    # the critic head's rate survives a checkpoint
    other = GeneratorLearner(cfg, 1)
    other.load_state_dict(learner.state_dict())
    assert [g["lr"] for g in other.pg_opt.param_groups] == [cfg.generator.adv_lr, 0.003]


def test_mask_mle_loss_is_the_nll_of_the_missing_tokens():
    cfg = maskgan_cfg()
    G = make_generator(cfg, 0)
    seqs = torch.randint(0, 40, (8, 8))
    present = make_mask(seqs, 0.5, "random", generator=torch.Generator().manual_seed(3))
    _, logp = G.decode(seqs, present, sample=False)
    enc, _ = G.encode(seqs, present, None)  # the first step by hand: the decoder from the encoder's state
    h, _ = G.decoder.step(G.embedding[torch.full((8,), cfg.data.start_token)], G.encode(seqs, present, None)[1],
                          G.decoder.masks(8, None, seqs.device))
    first = torch.log_softmax(G.attention(h, G.attention.keys(enc), enc) @ G.embedding.t() + G.out_bias, -1)
    assert torch.allclose(logp[:, 0], first.gather(-1, seqs[:, :1]).squeeze(-1), atol=1e-6)
    assert G.masked_nll(seqs, present).item() == pytest.approx(-logp[~present].mean().item(), rel=1e-5)


@pytest.mark.parametrize("override,key", [
    ({"maskgan": {"present_rate": 0.0}}, "maskgan.present_rate"),
    ({"maskgan": {"present_rate": 1.5}}, "maskgan.present_rate"),
    ({"maskgan": {"discount": -0.1}}, "maskgan.discount"),
    ({"maskgan": {"discount": 1.01}}, "maskgan.discount"),
    ({"maskgan": {"mask_mode": "blocks"}}, "maskgan.mask_mode"),
    ({"maskgan": {"d_pretrain_lr": 0.0}}, "maskgan.d_pretrain_lr"),
    ({"generator": {"kind": "leakgan"}}, "generator.kind"),
])
def test_bad_settings_are_one_line_errors_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as info:
        maskgan_cfg(**override)
    assert "\n" not in str(info.value)


def test_maskgan_keys_are_refused_with_another_method():
    with pytest.raises(ConfigError, match="maskgan.discount.*maskgan"):
        config_from_dict({**copy.deepcopy(TINY), "maskgan": {"discount": 0.5}})


def test_a_sentence_too_short_to_mask_is_found():
    eos = 2
    ok = torch.tensor([[5, 6, 2, 0], [5, 6, 7, 2]])
    assert shortest_sentence_hides_nothing(ok, eos, 0.5) is None
    assert shortest_sentence_hides_nothing(ok, eos, 0.8) == 2  # round(0.4) = 0 of 2 words hidden
    short = torch.tensor([[5, 2, 0, 0], [5, 6, 7, 2]])  # one word: nothing shown if it is hidden
    assert shortest_sentence_hides_nothing(short, eos, 0.5) == 1
    assert shortest_sentence_hides_nothing(short, eos, 1.0) is None  # nothing is meant to be hidden


def test_unique_ngram_share_counts_distinct_ngrams_up_to_eos():
    samples = torch.tensor([[5, 6, 5, 6, 2, 0], [5, 6, 7, 8, 9, 2]])  # eos 2
    # row 0: (5,6) (6,5) (5,6); row 1: (5,6) (6,7) (7,8) (8,9): 7 bigrams, 5 distinct
    assert unique_ngram_share(samples, 2, 2) == pytest.approx(5 / 7)
    assert unique_ngram_share(torch.tensor([[1, 1, 1, 1]] * 3), 2, None) == pytest.approx(1 / 9)
