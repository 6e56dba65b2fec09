"""LeakGAN's pieces: the rescale (true rank and the reference's bug), one policy for sampling,
rollouts and training, the losses reaching only their own network, the temperature trick,
D's padding row, and the settings refused by key."""

import pytest
import torch

from seqgan_ray.algorithms.leakgan import leakgan_objective, rescale
from seqgan_ray.config import ConfigError, config_from_dict
from seqgan_ray.models.discriminator import Discriminator
from seqgan_ray.models.leakgan import LeakGANPolicy
from seqgan_ray.rollout import complete_prefixes, rollout_uniforms
from tests.conftest import TINY

V, T, C = 30, 8, 4


def policy(trick: float = 1.0, seed: int = 0, seq_len: int = T) -> LeakGANPolicy:
    torch.manual_seed(seed)
    d = Discriminator(V, seq_len, emb_dim=8, filter_sizes=[1, 2, 3], num_filters=[5, 6, 7], dropout=0.0,
                      padding_row=True, seed=seed)
    g = LeakGANPolicy(V, 8, 8, seq_len, discriminator=d, goal_size=4, step_size=C, temperature_trick=trick)
    g.reset_parameters(0.5, torch.Generator().manual_seed(seed))  # larger than 0.1: sharper tests
    return g


def test_rank_rescale_orders_by_reward_and_the_reference_by_position():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(64, 5, generator=g)
    ranked = rescale(scores, "rank", 16.0)
    for k in range(5):  # monotone in the score, from σ(16/64 − 8) to σ(8)
        order = scores[:, k].argsort()
        assert torch.all(ranked[order, k].diff() > 0)
    assert ranked.max() == pytest.approx(torch.sigmoid(torch.tensor(8.0)).item())
    assert rescale(-scores, "rank", 16.0).flip(0).sum() == pytest.approx(ranked.flip(0).sum().item())
    ref = rescale(scores, "reference", 16.0)
    assert torch.equal(ref, rescale(-scores, "reference", 16.0))  # blind to D: negating changes nothing
    expected = torch.sigmoid(16.0 * (torch.arange(1, 65, dtype=torch.float32) / 64 - 0.5))
    assert torch.allclose(ref, expected[:, None].expand(64, 5))  # the rank is the batch position
    # The constant of CR-Gjx/LeakGAN#17: every column's mean, divided by 4 rollouts, with either ranking
    for out in (ref, ranked):
        assert (out / 4).mean(0).tolist() == pytest.approx([0.12695181503855285] * 5, abs=1e-6)


def test_reference_rescale_gives_ties_one_rank():
    scores = torch.tensor([[0.5], [0.2], [0.5], [0.9]])
    idx = torch.tensor([1.0, 2.0, 1.0, 3.0])
    assert torch.allclose(rescale(scores, "reference", 16.0)[:, 0], torch.sigmoid(16.0 * (idx / 4 - 0.5)))


@pytest.mark.parametrize("seq_len", [T, T - 1])  # T - 1: a corpus's T, the last block short
def test_sampling_and_teacher_forcing_are_one_policy(seq_len):
    """The log-probabilities that train are those of the distribution that samples, token by token."""
    g = policy(seq_len=seq_len)
    with torch.no_grad():
        seqs = g.sample(6, generator=torch.Generator().manual_seed(1))
        state, stepwise = g.begin(6), []
        for p in range(seq_len):
            if p:
                state = g.step(seqs[:, p - 1], state)
            logp = torch.log_softmax(g.goal_logits(state[0], state[5]), -1)
            stepwise.append(logp.gather(1, seqs[:, p:p + 1]).squeeze(1))
        assert torch.allclose(torch.stack(stepwise, 1), g.log_probs(seqs), atol=1e-5)
        assert torch.allclose(g.leak_terms(seqs).log_probs, g.log_probs(seqs), atol=1e-6)


@pytest.mark.parametrize("seq_len", [T, T - 1])
def test_prefix_states_are_the_stepped_states(seq_len):
    g = policy(seq_len=seq_len)
    with torch.no_grad():
        seqs = g.sample(3, generator=torch.Generator().manual_seed(2))
        cached = g.prefix_states(seqs)
        state = g.begin(3)
        for p in range(seq_len):
            if p:
                state = g.step(seqs[:, p - 1], state)
            for name, a, b in zip("h c mh mc acc goal windows pos".split(), cached, state):
                assert torch.allclose(a[:, p].to(b.dtype), b, atol=1e-5), (name, p)


def test_rollouts_keep_the_prefix_and_follow_the_goals():
    g = policy()
    with torch.no_grad():
        seqs = g.sample(5, generator=torch.Generator().manual_seed(3))
        u = rollout_uniforms(5, T, 3, generator=torch.Generator().manual_seed(4))
        out = complete_prefixes(g, seqs, 3, u, lengths=[C])  # LeakGAN's reward points: prefix c
        assert out.shape == (1, 3, 5, T) and torch.equal(out[0, :, :, :C], seqs[:, :C].expand(3, 5, C))
        # the same completion drawn token by token from the stepped state
        state = g.begin(5)
        for p in range(1, C + 1):
            state = g.step(seqs[:, p - 1], state)
        row = []
        for p in range(C, T):
            if p > C:
                state = g.step(row[-1], state)
            row.append(g.sample_next(state, u[0, C - 1, p]))
        assert torch.equal(out[0, 0, :, C:], torch.stack(row, 1))


def test_each_loss_reaches_only_its_network():
    g = policy()
    seqs = g.sample(4, generator=torch.Generator().manual_seed(5))
    manager, worker = [set(map(id, group)) for group in reversed(g.clip_groups())]
    terms = g.leak_terms(seqs)
    terms.manager_cos.sum().backward(retain_graph=True)
    touched = {id(p) for p in g.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert touched and touched <= manager
    g.zero_grad(set_to_none=True)
    (terms.worker_reward * terms.log_probs).sum().backward()
    touched = {id(p) for p in g.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert touched and touched <= worker
    assert all(p.grad is None for p in g.leak.parameters())


def test_objective_cosine_modes_differ_only_in_the_pairing():
    g = policy()
    seqs = g.sample(8, generator=torch.Generator().manual_seed(6))
    rewards = torch.rand(8, T // C, generator=torch.Generator().manual_seed(7))
    terms = g.leak_terms(seqs)
    with torch.no_grad():
        token = leakgan_objective(g, seqs, rewards, "token")
        mean = leakgan_objective(g, seqs, rewards, "batch_mean")
        manager_mean = -rewards.sum() * terms.manager_cos.mean() / rewards.numel()
        worker_mean = -terms.worker_reward.mean() * terms.log_probs.sum() / seqs.numel()
        assert mean.item() == pytest.approx((manager_mean + worker_mean).item(), rel=1e-5)
        manager_token = -(rewards * terms.manager_cos).sum() / rewards.numel()
        worker_token = -(terms.worker_reward * terms.log_probs).sum() / seqs.numel()
        assert token.item() == pytest.approx((manager_token + worker_token).item(), rel=1e-5)


def test_temperature_trick_boosts_negatives_and_the_first_two_tokens_of_updates():
    tricked, plain = policy(trick=1.5), policy(trick=1.0)
    seed = lambda: torch.Generator().manual_seed(8)  # noqa: E731
    assert torch.equal(tricked.sample(20, generator=seed()), plain.sample(20, generator=seed(), temperature=1 / 1.5))
    upd = tricked.sample(20, generator=seed(), update=True)
    g, state, toks = seed(), tricked.begin(20), []
    for p in range(T):  # by hand: 1.5 for tokens 0 and 1, then 1
        if p:
            state = tricked.step(toks[-1], state)
        toks.append(tricked.sample_next(state, torch.rand(20, 2, generator=g), temperature=1 / 1.5 if p < 2 else 1.0))
    assert torch.equal(upd, torch.stack(toks, 1))
    assert not torch.equal(upd, tricked.sample(20, generator=seed()))


def test_padding_row_reads_minus_one_as_its_own_token():
    d = Discriminator(V, T, emb_dim=8, filter_sizes=[1, 2], num_filters=[4, 4], padding_row=True, seed=0)
    assert d.embedding.weight.shape[0] == V + 1 and d.feature_dim == 8
    seqs = torch.randint(0, V, (6, T), generator=torch.Generator().manual_seed(9))
    assert torch.equal(d.embed(seqs), d.embedding.weight[seqs + 1])
    half = seqs.masked_fill(torch.arange(T) >= 3, -1)
    assert torch.equal(d.embed(half)[:, 3:], d.embedding.weight[0].expand(6, T - 3, 8))
    # the rollout scorer (which shares the prefix's windows) agrees with scoring each row
    comp = seqs[None, None].expand(2, 1, 6, T).clone()
    comp[:, :, :, 5:] = torch.randint(0, V, (2, 1, 6, T - 5), generator=torch.Generator().manual_seed(10))
    assert torch.allclose(d.prob_real_rollouts(seqs, comp, [3, 5]).flatten(),
                          d.prob_real(comp.reshape(-1, T)), atol=1e-6)


def leakgan_sections(**overrides):
    sections = {k: dict(v) for k, v in TINY.items()}
    sections["generator"].update(kind="leakgan")
    sections["rollout"].update(stride=4, update_rate=0.0)
    sections["train"].update(method="leakgan")
    sections["leakgan"] = {"pretrain_rounds": 1}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = value
    return sections


@pytest.mark.parametrize("override, named", [
    ({"leakgan.step_size": 3}, "leakgan.step_size"),
    ({"leakgan.step_size": 8}, "leakgan.step_size"),
    ({"leakgan.goal_size": 0}, "leakgan.goal_size"),
    ({"rollout.stride": 2}, "rollout.stride"),
    ({"rollout.update_rate": 0.8}, "rollout.update_rate"),
    ({"leakgan.pretrain_rounds": 3}, "leakgan.pretrain_rounds"),
    ({"generator.kind": "lstm"}, "generator.kind"),
    ({"leakgan.rescale": "sorted"}, "leakgan.rescale"),
    ({"rollout.reward": "bleu"}, "rollout.reward"),
    ({"train.method": "seqgan", "generator.kind": "lstm", "rollout.stride": 1}, "leakgan.pretrain_rounds"),
    ({"train.method": "seqgan", "leakgan.pretrain_rounds": 10, "rollout.stride": 1}, "generator.kind"),
])
def test_settings_that_do_not_fit_are_refused_by_key(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        config_from_dict(leakgan_sections(**override))


def test_a_fitting_leakgan_config_is_accepted():
    cfg = config_from_dict(leakgan_sections())
    assert cfg.train.method == "leakgan" and cfg.leakgan.step_size == 4


def test_under_the_reference_cosine_the_manager_cannot_see_d():
    """With the reference's batch-mean cosine, a ranked reward column sums to the same constant
    whatever D scored: the loss is the same for D's scores and their negation. Per-token
    cosines pair each reward with its own move, and it differs."""
    g = policy()
    seqs = g.sample(16, generator=torch.Generator().manual_seed(11))
    scores = torch.rand(16, T // C, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        loss = {(cos, sign): leakgan_objective(g, seqs, rescale(sign * scores, "rank", 16.0), cos).item()
                for cos in ("batch_mean", "token") for sign in (1, -1)}
    assert loss["batch_mean", 1] == pytest.approx(loss["batch_mean", -1], rel=1e-6)
    assert loss["token", 1] != pytest.approx(loss["token", -1], rel=1e-3)


@pytest.mark.parametrize("sizes, chunk", [([1, 2, 3, 8], 256), ([2, 5], 3)])
def test_prefix_features_equal_scoring_every_padded_prefix(sizes, chunk):
    d = Discriminator(V, T, emb_dim=8, filter_sizes=sizes, num_filters=[4 + i for i in range(len(sizes))],
                      padding_row=True, seed=3).eval()
    seqs = torch.randint(0, V, (10, T), generator=torch.Generator().manual_seed(13))
    keep = torch.arange(T)[None, :] < torch.arange(T + 1)[:, None]
    padded = torch.where(keep[None], seqs[:, None, :], -1)                 # (10, T + 1, T)
    with torch.no_grad():
        each = d.leaked_features(padded.flatten(0, 1)).view(10, T + 1, -1)
    assert torch.allclose(d.prefix_leaked_features(seqs, chunk_rows=chunk), each, atol=1e-5)


def test_leakgan_configs_build_d_without_l2_as_the_reference():
    """The reference sets dis_l2_reg_lambda = 0.2 but never passes it to its Discriminator (whose
    default is 0): every shipped LeakGAN config, and every run of a reproduce or tune file, has no
    L2 penalty on D."""
    from pathlib import Path

    import yaml

    from seqgan_ray.config import load_config
    from seqgan_ray.experiments.reproduce import load_plan

    paths = sorted((Path(__file__).parents[2] / "configs").glob("*leakgan*.yaml"))
    assert len(paths) >= 5
    for path in paths:
        sections = yaml.safe_load(path.read_text())
        if "reproduce" in sections:
            cfgs = [cfg for cfg in load_plan(path).run_configs.values() if cfg.train.method == "leakgan"]
        else:
            cfgs = [load_config(path)] if "tune" not in sections else []
            assert sections["discriminator"]["l2_reg"] == 0, path
        assert all(cfg.discriminator.l2_reg == 0 for cfg in cfgs), path
