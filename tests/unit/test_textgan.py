"""TextGAN's pieces: the MMD and mean-feature distances against a direct computation, the latent
LSTM's codes and likelihood convention, the signs of D's and G's steps, and the config checks."""

import math

import numpy as np
import pytest
import torch

from seqgan_ray.algorithms.textgan import discriminator_objective, feature_distance, generator_objective, soft_fakes
from seqgan_ray.config import ConfigError, config_from_dict
from seqgan_ray.losses import gaussian_mmd, mean_feature_distance
from seqgan_ray.roles import DiscriminatorTrainer, GeneratorLearner, make_generator
from tests.conftest import TINY

TEXTGAN = {"generator": {"kind": "latent_lstm", "latent_dim": 6}, "train": {"method": "textgan"}}


def textgan_sections(**extra) -> dict:
    sections = {k: dict(v) for k, v in TINY.items()}
    for name, values in {**TEXTGAN, **extra}.items():
        sections[name] = {**sections.get(name, {}), **values}
    return sections


def textgan_cfg(**extra):
    return config_from_dict(textgan_sections(**extra))


def test_mmd_is_the_square_root_of_the_biased_estimate_summed_over_bandwidths():
    rng = np.random.default_rng(0)
    x, y, sigmas = rng.normal(size=(5, 3)), rng.normal(1.0, 1.0, size=(4, 3)), [0.5, 2.0]

    def mean_k(a, b):
        return np.mean([[sum(math.exp(-np.sum((p - q) ** 2) / (2 * s * s)) for s in sigmas) for q in b] for p in a])

    expected = math.sqrt(mean_k(x, x) + mean_k(y, y) - 2 * mean_k(x, y))
    got = gaussian_mmd(torch.tensor(x), torch.tensor(y), sigmas).item()
    assert got == pytest.approx(expected, rel=1e-9)
    assert gaussian_mmd(torch.tensor(x), torch.tensor(x), sigmas).item() < 1e-5  # the same batch: 0


def test_mean_feature_distance_is_the_rms_of_the_mean_difference():
    x, y = torch.randn(6, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    expected = np.sqrt(np.mean((x.numpy().mean(0) - y.numpy().mean(0)) ** 2))
    assert mean_feature_distance(x, y).item() == pytest.approx(expected, rel=1e-9)


def test_latent_lstm_codes_and_likelihood_convention():
    cfg = textgan_cfg()
    g = make_generator(cfg, 0)
    seqs = g.sample(8, generator=torch.Generator().manual_seed(1))
    assert g.nll(seqs) == g.nll(seqs)  # no stream given: one fixed draw of the codes
    a = g.log_probs(seqs, generator=torch.Generator().manual_seed(2))
    b = g.log_probs(seqs, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(a, b)  # a stream given: codes drawn from it (MLE's)
    z = g.draw_latent(8, torch.Generator().manual_seed(2))
    assert z.shape == (8, 6) and z.abs().max() <= 1
    state, tok = g.latent_state(z), torch.zeros(8, dtype=torch.long)
    for t in range(cfg.data.seq_len):  # teacher forcing starts from the same code's h0
        state = g.step(tok, state)
        tok = seqs[:, t]
        manual = torch.log_softmax(g.logits(state[0]), -1).gather(1, tok[:, None])[:, 0]
        assert torch.allclose(a[:, t], manual, atol=1e-5)


def test_noise_free_soft_argmax_decodes_each_code_greedily():
    cfg = textgan_cfg(textgan={"noise": False})
    g = make_generator(cfg, 0)
    z = g.draw_latent(1, torch.Generator().manual_seed(0)).repeat(4, 1)
    with torch.no_grad():
        toks, soft = g.sample_relaxed(4, 1000.0, feed="soft", initial=g.latent_state(z), noise=False)
    assert (toks == toks[0]).all()  # one code, one sequence
    assert torch.allclose(soft.amax(-1), torch.ones(4, cfg.data.seq_len), atol=1e-4)  # L = 1000: one-hot


def d_steps_on_a_fixed_batch(mmd_weight: float, recon_weight: float, steps: int = 60) -> list[tuple[float, float]]:
    """(MMD, reconstruction error) of a fresh D on one fixed batch (the same real sequences,
    codes and fakes every step: D's stream is rewound), before and after `steps` D steps."""
    cfg = textgan_cfg(textgan={"mmd_weight": mmd_weight, "recon_weight": recon_weight, "bandwidths": [1.0, 5.0]},
                      discriminator={**TINY["discriminator"], "lr": 1e-2, "dropout": 0.0})
    learner, disc = GeneratorLearner(cfg, 0), DiscriminatorTrainer(cfg, 10)
    disc.set_opponent(learner.weights())
    real, start = learner.sample(32), disc.rng.get_state()
    z, soft = soft_fakes(disc.opponent, disc.rng, 32, cfg.textgan)

    def measure():
        with torch.no_grad():
            d = disc.discriminator
            fake_feat = d.features(soft)
            return (feature_distance(cfg.textgan, fake_feat, d.features(real)).item(),
                    (d.recon(fake_feat) - z).pow(2).mean().item())

    before = measure()
    for _ in range(steps):
        disc.rng.set_state(start)
        disc.adversarial_step(discriminator_objective, real, cfg.textgan)
    return [before, measure()]


def test_discriminator_steps_raise_the_mmd_and_lower_the_reconstruction_error():
    """D's signs (the authors', text_gan.py line 462; Texygen's are the opposite): on a fixed
    batch, D's steps raise the MMD between its features of real and generated sequences and
    lower its error reconstructing the codes, more so than the GAN loss alone does."""
    (mmd0, recon0), (mmd, recon) = d_steps_on_a_fixed_batch(1.0, 1.0)
    _, (mmd_gan, recon_gan) = d_steps_on_a_fixed_batch(0.0, 0.0)
    assert mmd > 5 * mmd0 and mmd > 1.5 * mmd_gan, (mmd0, mmd, mmd_gan)
    assert recon < 0.95 * recon0 and recon < 0.95 * recon_gan, (recon0, recon, recon_gan)


@pytest.mark.parametrize("match", ["mmd", "mean"])
def test_generator_steps_lower_the_feature_distance(match):
    """G's steps through D's frozen copy bring its soft batches' features toward the real batch's
    (a small L, so the soft-argmax passes gradients in a few steps)."""
    cfg = textgan_cfg(textgan={"match": match, "soft_argmax": 2.0, "bandwidths": [2.0, 10.0]},
                      generator={**TEXTGAN["generator"], "adv_lr": 0.05})
    learner, disc = GeneratorLearner(cfg, 0), DiscriminatorTrainer(cfg, 10)
    learner.set_critic(disc.weights())
    real = torch.arange(cfg.data.seq_len * 64).view(64, -1) % 4  # tokens 0-3 only

    def measure():
        with torch.no_grad():
            return generator_objective(learner.generator, learner.critic, torch.Generator().manual_seed(7),
                                       real, cfg.textgan).item()

    before = measure()
    for _ in range(25):
        learner.adversarial_step(generator_objective, real, cfg.textgan)
    after = measure()
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize("override,key", [
    ({"textgan": {"bandwidths": [20.0, 0.0]}}, "textgan.bandwidths"),
    ({"textgan": {"bandwidths": []}}, "textgan.bandwidths"),
    ({"textgan": {"soft_argmax": -1.0}}, "textgan.soft_argmax"),
    ({"textgan": {"match": "moment"}}, "textgan.match"),
    ({"textgan": {"mmd_weight": -0.1}}, "textgan.mmd_weight"),
    ({"generator": {"kind": "lstm"}}, "generator.kind"),
    ({"relaxed": {"loss": "rsgan"}}, "relaxed.loss"),  # relgan's and gsgan's, not textgan's
])
def test_bad_textgan_settings_are_refused_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        textgan_cfg(**override)
    textgan_cfg(relaxed={"d_steps": 1, "grad_clip": 1.0})  # the relaxed keys textgan reads


@pytest.mark.parametrize("method,section,value,key", [
    ("seqgan", "textgan", {"match": "mean"}, "textgan.match"),
    ("gsgan", "textgan", {"bandwidths": [2.0]}, "textgan.bandwidths"),
    ("seqgan", "relaxed", {"temperature_max": 10.0}, "relaxed.temperature_max"),
    ("mle", "relaxed", {"d_steps": 2}, "relaxed.d_steps"),
])
def test_a_methods_key_set_for_another_method_is_refused(method, section, value, key):
    sections = {k: dict(v) for k, v in TINY.items()}
    sections["train"]["method"], sections[section] = method, value
    with pytest.raises(ConfigError, match=f"'{key}' is read only by train.method"):
        config_from_dict(sections)


def test_latent_lstm_is_refused_with_seqgans_rollouts():
    sections = textgan_sections()
    sections["train"]["method"] = "seqgan"
    with pytest.raises(ConfigError, match="'generator.kind: latent_lstm'"):
        config_from_dict(sections)
    sections["train"]["method"] = "mle"  # the MLE baseline of the same generator
    config_from_dict(sections)


def test_textgan_discriminator_steps_apply_the_l2_penalty():
    """discriminator.l2_reg weighs D's output layer in TextGAN's D steps (it was silently
    ignored there): the step's loss grows by exactly λ·(‖W‖² + ‖b‖²)/2."""
    from tests.unit.test_relaxed import l2_effect

    cfg = textgan_cfg(discriminator={**TINY["discriminator"], "l2_reg": 3.0})
    gap, penalty = l2_effect(cfg, discriminator_objective, cfg.textgan)
    assert penalty > 0 and gap == pytest.approx(penalty, rel=1e-4)


def test_grad_rescale_scales_every_step_to_the_authors_norm():
    """textgan.grad_rescale 5: G's and D's gradients of each adversarial step end at global norm
    5, small ones scaled up, as the authors' optimiser does (its `if` is always true); 0 keeps
    the clip, which leaves a gradient below it as it is."""
    from types import SimpleNamespace

    from seqgan_ray.algorithms.textgan import TextGAN

    def grad_norm(module):
        return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters()
                                                     if p.grad is not None])).item()

    norms = {}
    for rescale in (5.0, 0.0):
        cfg = textgan_cfg(textgan={"grad_rescale": rescale})
        learner, disc = GeneratorLearner(cfg, 0), DiscriminatorTrainer(cfg, 10)
        real = learner.sample(64)
        ctx = SimpleNamespace(cfg=cfg, learner=learner, disc=disc, real_batch=lambda n: real[:n])
        TextGAN.start(None, ctx, fresh=True)
        metrics, _ = TextGAN().iteration(ctx, 1)
        norms[rescale] = grad_norm(learner.generator), grad_norm(disc.discriminator), metrics["gen/grad_norm"]
    assert norms[5.0][0] == pytest.approx(5.0, rel=1e-4) and norms[5.0][1] == pytest.approx(5.0, rel=1e-4)
    g_before = norms[5.0][2]  # the norm before the rescale: below the clip, so the clip left it
    assert g_before < 5.0 and norms[0.0][0] == pytest.approx(g_before, rel=1e-3)
