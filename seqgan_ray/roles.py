"""The three roles of SeqGAN training as plain classes.

Each is usable in-process (tests, notebooks, the deterministic local mode) and becomes a
Ray actor from outside, `ray.remote(num_cpus=...)(GeneratorLearner)`, in
`seqgan_ray.distributed`. Weights cross between roles as state dicts of CPU tensors.

- `GeneratorLearner` holds G_θ, its two Adam optimizers (MLE and policy gradient, as in the
  reference code) and the delayed rollout policy G_β.
- `RolloutWorker` holds a copy of G_β and of D_φ and turns sequences into Eq. 4 rewards.
- `DiscriminatorTrainer` holds D_φ and its optimizer and trains it on real vs generated.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

from .config import MASKGAN_METHODS, Config
from .kernels.cuda_graphs import GraphedStep
from .losses import discriminator_loss, mle_loss, output_l2, policy_gradient_loss
from .models.discriminator import Discriminator, RelGANDiscriminator
from .models.leakgan import LeakGANPolicy
from .models.latent import LatentLSTMPolicy
from .models.maskgan import MaskGANDiscriminator, MaskGANGenerator
from .models.policy import LSTMPolicy
from .models.relational import RelationalMemoryPolicy
from .models.value import PrefixValue, critic_advantages, value_loss
from .rewards import Reward, make_reward, needs_data
from .rollout import mc_rewards

StateDict = dict[str, Tensor]


def _set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def pick_device() -> torch.device:
    """The GPU when this process has one (Ray sets CUDA_VISIBLE_DEVICES from num_gpus), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def restore_rng(rng: torch.Generator, state: Tensor) -> None:
    """`rng.set_state(state)`, or, for a state saved by a generator of another device type (a
    run checkpointed on a GPU and resumed on a CPU, or the reverse: their states differ in
    kind and size), a new stream seeded from that state. The run goes on, reproducibly, but
    it no longer draws the numbers an uninterrupted run would have."""
    try:
        rng.set_state(state)
    except RuntimeError:
        rng.manual_seed(int.from_bytes(hashlib.sha256(state.numpy().tobytes()).digest()[:8], "little"))


def uses_maskgan_models(cfg: Config) -> bool:
    """Whether G and D are MaskGAN's seq2seq models (train.method maskgan, or its MaskMLE baseline)."""
    return cfg.train.method in MASKGAN_METHODS


def make_generator(cfg: Config, seed: int) -> LSTMPolicy:
    """G as generator.kind says: SeqGAN's LSTM, TextGAN's LSTM with a latent code, RelGAN's
    relational memory or LeakGAN's Manager and Worker (the same API); MaskGAN's seq2seq in-filler
    with train.method maskgan."""
    d, g = cfg.data, cfg.generator
    eos = d.eos_token if d.eos_token >= 0 else None
    if uses_maskgan_models(cfg):
        mc = cfg.maskgan
        policy = MaskGANGenerator(d.vocab_size, mc.hidden_dim, d.seq_len, d.start_token, layers=mc.num_layers,
                                  keep=mc.keep_prob, eos_token=eos, present_rate=mc.present_rate,
                                  mask_mode=mc.mask_mode)
    elif g.kind == "leakgan":
        lc = cfg.leakgan
        policy = LeakGANPolicy(d.vocab_size, g.emb_dim, g.hidden_dim, d.seq_len, d.start_token,
                               discriminator=make_discriminator(cfg, 0), goal_size=lc.goal_size,
                               step_size=lc.step_size, temperature_trick=lc.temperature_trick,
                               eos_token=eos, chunk_rows=cfg.rollout.chunk_rows)
    elif g.kind == "relational_memory":
        policy = RelationalMemoryPolicy(d.vocab_size, g.emb_dim, d.seq_len, d.start_token, mem_slots=g.mem_slots,
                                        head_size=g.head_size, num_heads=g.num_heads, eos_token=eos,
                                        chunk_rows=cfg.rollout.chunk_rows)
    elif g.kind == "latent_lstm":
        policy = LatentLSTMPolicy(d.vocab_size, g.emb_dim, g.hidden_dim, d.seq_len, d.start_token,
                                  latent_dim=g.latent_dim, eos_token=eos, chunk_rows=cfg.rollout.chunk_rows)
    else:
        policy = LSTMPolicy(d.vocab_size, g.emb_dim, g.hidden_dim, d.seq_len, d.start_token, eos_token=eos,
                            chunk_rows=cfg.rollout.chunk_rows)
    policy.reset_parameters(g.init_std, torch.Generator().manual_seed(seed))
    return policy


def make_discriminator(cfg: Config, seed: int) -> Discriminator | RelGANDiscriminator:
    """D as discriminator.kind says: SeqGAN's CNN or RelGAN's. Facing a generator with a latent
    code (generator.kind latent_lstm), the CNN has a head that reconstructs the code (TextGAN)."""
    dc = cfg.discriminator
    if uses_maskgan_models(cfg):
        mc, d = cfg.maskgan, cfg.data
        disc = MaskGANDiscriminator(d.vocab_size, mc.hidden_dim, d.start_token, layers=mc.num_layers,
                                    keep=mc.d_keep_prob, eos_token=d.eos_token if d.eos_token >= 0 else None)
        disc.reset_parameters(cfg.generator.init_std, torch.Generator().manual_seed(seed))
        return disc
    if dc.kind == "relgan":
        return RelGANDiscriminator(cfg.data.vocab_size, cfg.data.seq_len, emb_dim=dc.emb_dim, num_rep=dc.num_rep,
                                   filter_sizes=dc.filter_sizes, num_filters=dc.num_filters,
                                   dropout=dc.dropout, precision=dc.precision, seed=seed)
    return Discriminator(cfg.data.vocab_size, cfg.data.seq_len, emb_dim=dc.emb_dim,
                         filter_sizes=dc.filter_sizes, num_filters=dc.num_filters, dropout=dc.dropout,
                         precision=dc.precision, padding_row=cfg.generator.kind == "leakgan", seed=seed,
                         latent_dim=cfg.generator.latent_dim if cfg.generator.kind == "latent_lstm" else 0)


def cpu_state(module: torch.nn.Module) -> StateDict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


class GenStep(NamedTuple):
    loss: float
    grad_norm: float
    stats: dict[str, float] | None = None  # what an objective returned besides its loss


def policy_gradient_objective(generator: LSTMPolicy, seqs: Tensor, rewards: Tensor) -> Tensor:
    """Eq. 8's loss for `seqs` (B, T) with Eq. 4's `rewards` (B, T): an objective for
    `GeneratorLearner.update`."""
    return policy_gradient_loss(generator.log_probs(seqs), rewards, generator.mask(seqs))


def mle_step(generator: LSTMPolicy, opt: torch.optim.Optimizer, batch: Tensor, grad_clip: float, *,
             sampling_prob: float = 0.0, rng: torch.Generator | None = None,
             sync_gradients: Callable[[list[Tensor]], None] | None = None) -> Tensor:
    """One MLE step of `generator` on `batch` (B, T): the learner's, and each Ray Train worker's
    (whose `sync_gradients` averages the gradients across workers before the clip). With
    `sampling_prob` > 0, scheduled sampling. Returns the loss, detached, on the device: no host
    sync, so on a GPU the step can be recorded into a CUDA graph."""
    if isinstance(generator, MaskGANGenerator):  # MaskMLE: the missing tokens of a fresh mask
        objective = loss = generator.mask_mle_loss(batch, generator=rng)
    elif isinstance(generator, LeakGANPolicy):  # the Worker by MLE, the Manager to the real feature moves
        terms = generator.leak_terms(batch)
        loss = mle_loss(terms.log_probs, generator.mask(batch))
        objective = loss - terms.manager_cos.mean()
    else:
        logp = (generator.log_probs_scheduled(batch, sampling_prob, generator=rng) if sampling_prob > 0
                else generator.log_probs(batch, generator=rng))
        objective = loss = mle_loss(logp, generator.mask(batch))
    opt.zero_grad(set_to_none=True)
    objective.backward()
    if sync_gradients is not None:
        sync_gradients([p.grad for p in generator.parameters()])
    clip_gradients(generator, grad_clip)
    opt.step()
    return loss.detach()


def rescale_gradients(parameters: list[Tensor], norm: float) -> Tensor:
    """Scale the gradients of `parameters` together to global norm `norm`, whatever their norm
    (the TextGAN authors' optimiser: textgan.grad_rescale); returns the norm before."""
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = norm / (total + 1e-12)
    for g in grads:
        g.mul_(scale)
    return total


def clip_gradients(generator: torch.nn.Module, max_norm: float) -> Tensor:
    """Clip the gradient norm at `max_norm`: of all of G's parameters, or of each of the groups
    it names (`clip_groups`: LeakGAN's Worker and Manager). Returns the norm before clipping."""
    groups = generator.clip_groups() if hasattr(generator, "clip_groups") else [list(generator.parameters())]
    norms = [torch.nn.utils.clip_grad_norm_(group, max_norm) for group in groups]
    return torch.stack(norms).norm() if len(norms) > 1 else norms[0]


class DiscStats(NamedTuple):
    loss: float
    acc_real: float
    acc_fake: float


class GeneratorLearner:
    """G_θ with its optimizers, and the delayed rollout policy G_β."""

    def __init__(self, cfg: Config, seed: int, *, threads: int = 0):
        _set_threads(threads)
        self.cfg, self.device = cfg, pick_device()
        self.generator = make_generator(cfg, seed).to(self.device)
        self.rollout_policy = copy.deepcopy(self.generator).requires_grad_(False)  # β
        g = cfg.generator
        # a latent code is drawn in every MLE step, from a stream the recorded graph does not hold
        # (MaskGAN's MLE draws a mask every step, likewise)
        graphed = (self.device.type == "cuda" and cfg.train.cuda_graphs and g.kind != "latent_lstm"
                   and not uses_maskgan_models(cfg))
        self.mle_opt = torch.optim.Adam(self.generator.parameters(), lr=g.lr, fused=True, capturable=graphed)
        self.pg_opt = torch.optim.Adam(self._pg_groups(), lr=g.adv_lr, fused=True)
        self.rng = torch.Generator(self.device).manual_seed(seed + 1)
        self.data: Tensor | None = None
        self.mle_loss_sum = torch.zeros((), device=self.device)
        self.graphed_mle = GraphedStep(self._mle_step) if graphed else None  # plain MLE steps only
        self.critic: torch.nn.Module | None = None  # a frozen copy of D (set_critic), for relaxed GANs
        # rollout.estimator critic: V(Y_1:t) in place of Eq. 4's rollouts, with its own optimizer
        self.value_net: PrefixValue | None = None
        if cfg.rollout.estimator == "critic":
            self.value_net = PrefixValue(cfg.data.vocab_size, g.emb_dim, g.hidden_dim, cfg.data.start_token)
            self.value_net.reset_parameters(g.init_std, torch.Generator().manual_seed(seed + 2))
            self.value_net.to(self.device)
            self.value_opt = torch.optim.Adam(self.value_net.parameters(), lr=cfg.rollout.critic_lr)

    def _pg_groups(self) -> list[dict[str, Any]]:
        """The `pg` optimizer's parameter groups: all of G at generator.adv_lr, but for MaskGAN's
        critic head, at maskgan.critic_lr."""
        if not isinstance(self.generator, MaskGANGenerator):
            return [{"params": list(self.generator.parameters()), "lr": self.cfg.generator.adv_lr}]
        gen, critic = self.generator.clip_groups()
        return [{"params": gen, "lr": self.cfg.generator.adv_lr},
                {"params": critic, "lr": self.cfg.maskgan.critic_lr}]

    def set_critic(self, discriminator: StateDict) -> None:
        """Hold a frozen copy of D_φ with these weights, through which `adversarial_step`'s
        objectives pass gradients to θ (the relaxed GANs; D itself trains elsewhere)."""
        if isinstance(self.generator, LeakGANPolicy):  # G and β sample through their copies of D
            self.generator.leak.load_state_dict(discriminator)
            self.rollout_policy.leak.load_state_dict(discriminator)
            return
        if self.critic is None:
            self.critic = make_discriminator(self.cfg, 0).requires_grad_(False).to(self.device)
        self.critic.load_state_dict(discriminator)

    def adversarial_step(self, objective: Callable[..., Tensor], *args: Any, rescale: float = 0.0) -> GenStep:
        """One step of θ (the `pg` optimizer, rate generator.adv_lr) down
        `objective(generator, critic, rng, *args)`: `critic` the copy of D from `set_critic`,
        `rng` this role's random stream (checkpointed, so a resumed run draws the same noise).
        `rescale` > 0: the gradient rescaled to that global norm instead of clipped."""
        assert self.critic is not None, "call set_critic first"
        return self.update(lambda generator, *rest: objective(generator, self.critic, self.rng, *rest), *args,
                           rescale=rescale)

    def set_data(self, data: Tensor) -> None:
        self.data = data.to(self.device)

    def sample(self, num: int, *, update: bool = False, seed: int | None = None) -> Tensor:
        """Draw `num` sequences (num, T) from G_θ; returned on the CPU. `update`: the samples are
        for a G update (LeakGAN's temperature trick then spares all but the first two tokens).
        `seed`: from a stream of their own, leaving the role's as it was."""
        rng = self.rng if seed is None else torch.Generator(self.device).manual_seed(seed)
        if update and isinstance(self.generator, LeakGANPolicy):
            return self.generator.sample(num, generator=rng, update=True).cpu()
        return self.generator.sample(num, generator=rng).cpu()

    @torch.no_grad()
    def sample_relaxed(self, num: int, inverse_temperature: float, *, feed: str, seed: int,
                       chunk: int = 256) -> Tensor:
        """`num` token sequences (num, T) of the sampler the relaxed GANs train (`sample_relaxed`
        with this `feed` and β), on the CPU: with feed soft not the policy `sample` draws. Drawn
        `chunk` rows at a time (the soft tokens are chunk × T × V) from a stream seeded with `seed`,
        so evaluating them leaves the role's own stream as it was."""
        rng = torch.Generator(self.device).manual_seed(seed)
        return torch.cat([self.generator.sample_relaxed(min(chunk, num - i), inverse_temperature, feed=feed,
                                                        generator=rng)[0].cpu() for i in range(0, num, chunk)])

    def _apply(self, loss: Tensor, opt: torch.optim.Optimizer, rescale: float = 0.0) -> Tensor:
        """Backward, clip (or rescale to norm `rescale` > 0), step; the gradient norm before
        stays on the device (no host sync)."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = (rescale_gradients(list(self.generator.parameters()), rescale) if rescale > 0
                else clip_gradients(self.generator, self.cfg.generator.grad_clip))
        opt.step()
        return norm

    def pretrain_epoch(self, sampling_prob: float = 0.0) -> float:
        """One MLE epoch over the data in batches (shuffled, or in order with
        generator.shuffle false); returns the mean NLL per token.
        With `sampling_prob` > 0, scheduled sampling: inputs are the model's own samples with
        that probability."""
        assert self.data is not None, "call set_data first"
        B, n = self.cfg.generator.batch_size, self.data.shape[0]
        order = (torch.randperm(n, generator=self.rng, device=self.device) if self.cfg.generator.shuffle
                 else torch.arange(n, device=self.device))
        self.mle_loss_sum.zero_()
        for i in range(0, n - B + 1, B):  # full batches only, as the reference code
            batch = self.data[order[i:i + B]]
            if sampling_prob > 0:  # a rate that changes every epoch: eager
                self._mle_step(batch, sampling_prob)
            else:
                (self.graphed_mle or self._mle_step)(batch)
        return self.mle_loss_sum.item() / max(n // B, 1)  # the one wait for the device

    def mle_batches(self, batches: Tensor, sampling_prob: float = 0.0) -> float:
        """One MLE step on each of `batches` (k, B, T), in order (a piece of an epoch streamed
        from a corpus the learner does not hold); returns their summed loss."""
        self.mle_loss_sum.zero_()
        for batch in batches.to(self.device):
            if sampling_prob > 0:
                self._mle_step(batch, sampling_prob)
            else:
                (self.graphed_mle or self._mle_step)(batch)
        return self.mle_loss_sum.item()

    def _mle_step(self, batch: Tensor, sampling_prob: float = 0.0) -> None:
        """One MLE step (scheduled sampling with `sampling_prob` > 0); its loss is added to
        `mle_loss_sum` on the device."""
        self.mle_loss_sum += mle_step(self.generator, self.mle_opt, batch, self.cfg.generator.grad_clip,
                                      sampling_prob=sampling_prob, rng=self.rng)

    def nll(self, seqs: Tensor) -> float:
        """G_θ's mean per-token NLL of `seqs` (S, T), e.g. NLL-test on held-out text."""
        return self.generator.nll(seqs.to(self.device))

    def pg_step(self, seqs: Tensor, rewards: Tensor) -> GenStep:
        """Eq. 8: one policy-gradient update of θ on `seqs` (B, T) with `rewards` (B, T)."""
        return self.update(policy_gradient_objective, seqs, rewards)

    def critic_pg_step(self, seqs: Tensor) -> GenStep:
        """rollout.estimator critic: Eq. 8 on `seqs` (B, T) with each token's advantage from the
        value net (models/value.py) and D's score of the sequence (the copy from `set_critic`)
        in place of Eq. 4's rewards; then rollout.critic_steps steps of the value net toward
        D's scores, the first on `seqs`, the others on fresh samples of G."""
        assert self.critic is not None and self.value_net is not None, "call set_critic first"
        seqs = seqs.to(self.device)
        with torch.no_grad():
            scores = self.critic.prob_real(seqs)  # (B,)
            advantages = critic_advantages(self.value_net(seqs), scores)  # (B, T)
        step = self.update(policy_gradient_objective, seqs, advantages)
        loss = self._value_step(seqs, scores)
        for _ in range(self.cfg.rollout.critic_steps - 1):
            fresh = self.sample(len(seqs)).to(self.device)
            with torch.no_grad():
                fresh_scores = self.critic.prob_real(fresh)
            loss = self._value_step(fresh, fresh_scores)
        return GenStep(step.loss, step.grad_norm, {"gen/advantage_mean": advantages.mean().item(),
                                                   "gen/d_score_mean": scores.mean().item(),
                                                   "critic/loss": loss})

    def _value_step(self, seqs: Tensor, scores: Tensor) -> float:
        """One Adam step of the value net toward D's `scores` (B,) of `seqs` (B, T); its loss."""
        loss = value_loss(self.value_net(seqs), scores, self.generator.mask(seqs))
        self.value_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.value_net.parameters(), self.cfg.generator.grad_clip)
        self.value_opt.step()
        return loss.item()

    def update(self, objective: Callable[..., Tensor], *args: Any, optimizer: str = "pg",
               rescale: float = 0.0) -> GenStep:
        """One step of θ down `objective(generator, *args)`, a scalar loss: backward, clip (or,
        with `rescale` > 0, rescale the gradient to that global norm), and a
        step of the `pg` optimizer (rate generator.adv_lr) or the `mle` one (generator.lr).
        Tensors among `args` are moved to the learner's device. How an algorithm updates G its
        own way: on a Ray actor, `objective` travels by reference (a module-level function).
        An objective may return (loss, stats): a dict of floats, handed back in GenStep.stats."""
        args = tuple(a.to(self.device) if isinstance(a, Tensor) else a for a in args)
        loss = objective(self.generator, *args)
        loss, stats = loss if isinstance(loss, tuple) else (loss, None)
        norm = self._apply(loss, {"pg": self.pg_opt, "mle": self.mle_opt}[optimizer], rescale)
        return GenStep(loss.item(), float(norm), stats)

    @torch.no_grad()
    def infill(self, seqs: Tensor, present: Tensor) -> Tensor:
        """MaskGAN: `seqs` (B, T) with the tokens where `present` is False sampled by G_θ (no
        dropout), from this role's stream."""
        return self.generator.infill(seqs.to(self.device), present.to(self.device), generator=self.rng)[0].cpu()

    @torch.no_grad()
    def masked_nll(self, seqs: Tensor, present: Tensor) -> float:
        """MaskGAN: G_θ's mean NLL of the missing tokens of `seqs` given the present ones (teacher forced)."""
        return float(self.generator.masked_nll(seqs.to(self.device), present.to(self.device)))

    @torch.no_grad()
    def critic_token_accuracy(self, real: Tensor, filled: Tensor, present: Tensor) -> tuple[float, float]:
        """MaskGAN: the accuracy of the copy of D from `set_critic` (no dropout) on the missing
        tokens, of `real` (B, T) as real and of `filled` (its in-fills) as filled in."""
        from .algorithms.maskgan import discriminator_loss as token_loss

        assert self.critic is not None, "call set_critic first"
        real, filled, present = real.to(self.device), filled.to(self.device), present.to(self.device)
        _, acc_real, acc_fake = token_loss(self.critic(real, present), self.critic(filled, present),
                                           (~present).float())
        return float(acc_real), float(acc_fake)

    def load_pretrained(self, generator: StateDict, mle_opt: dict[str, Any]) -> None:
        """θ and the MLE optimizer from pretraining done elsewhere (Ray Train)."""
        self.generator.load_state_dict(generator)
        self.mle_opt.load_state_dict(mle_opt)
        _set_lr(self.mle_opt, self.cfg.generator.lr)
        if self.graphed_mle is not None:
            self.graphed_mle.reset()  # the optimizer's state tensors were replaced: record anew

    def sync_rollout_policy(self) -> None:
        """β ← θ (at the start of adversarial training)."""
        self.rollout_policy.load_state_dict(self.generator.state_dict())

    @torch.no_grad()
    def update_rollout_policy(self) -> None:
        """β ← r·β + (1−r)·θ with r = rollout.update_rate (0 means β = θ)."""
        r = self.cfg.rollout.update_rate
        for beta, theta in zip(self.rollout_policy.parameters(), self.generator.parameters()):
            beta.mul_(r).add_(theta, alpha=1.0 - r)

    def weights(self) -> StateDict:
        return cpu_state(self.generator)

    def device_name(self) -> str:
        return str(self.device)

    def rollout_weights(self) -> StateDict:
        return cpu_state(self.rollout_policy)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.state_dict(),
                "rollout_policy": self.rollout_policy.state_dict(),
                "mle_opt": self.mle_opt.state_dict(), "pg_opt": self.pg_opt.state_dict(),
                "rng": self.rng.get_state(),
                **({} if self.value_net is None else {"value_net": self.value_net.state_dict(),
                                                      "value_opt": self.value_opt.state_dict()})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.rollout_policy.load_state_dict(state["rollout_policy"])
        self.mle_opt.load_state_dict(state["mle_opt"])
        self.pg_opt.load_state_dict(state["pg_opt"])
        _set_lr(self.mle_opt, self.cfg.generator.lr)  # the config's rates win (a sweep may change them)
        for group, wanted in zip(self.pg_opt.param_groups, self._pg_groups()):
            group["lr"] = wanted["lr"]
        restore_rng(self.rng, state["rng"])
        if self.value_net is not None and "value_net" in state:  # absent: a run that pretrained with mc
            self.value_net.load_state_dict(state["value_net"])
            self.value_opt.load_state_dict(state["value_opt"])
            _set_lr(self.value_opt, self.cfg.rollout.critic_lr)
        if self.graphed_mle is not None:
            self.graphed_mle.reset()


class DiscriminatorTrainer:
    """D_φ and its optimizer, trained on real (label 1) vs generated (label 0) sequences."""

    def __init__(self, cfg: Config, seed: int, *, threads: int = 0):
        _set_threads(threads)
        self.cfg, self.device = cfg, pick_device()
        self.discriminator = make_discriminator(cfg, seed).to(self.device)
        graphed = self.device.type == "cuda" and cfg.train.cuda_graphs
        self.opt = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.discriminator.lr, fused=True,
                                    capturable=graphed)
        self.rng = torch.Generator(self.device).manual_seed(seed + 1)
        self.real: Tensor | None = None
        # loss sum, right on real, right on fake, over the batches of one train() call
        self.tally = torch.zeros(3, device=self.device)
        self.graphed = GraphedStep(self._step, self.rng) if graphed else None
        self.opponent: LSTMPolicy | None = None  # a frozen copy of G (set_opponent), for relaxed GANs

    def set_opponent(self, generator: StateDict) -> None:
        """Hold a frozen copy of G_θ with these weights, whose samples `adversarial_step`'s
        objectives score as fakes (the relaxed GANs)."""
        if self.opponent is None:
            self.opponent = make_generator(self.cfg, 0).requires_grad_(False).to(self.device)
        self.opponent.load_state_dict(generator)

    def adversarial_step(self, objective: Callable[..., Tensor], *args: Any, rescale: float = 0.0) -> float:
        """One step of φ down `objective(discriminator, generator, rng, *args)`, `generator` the
        copy of G from `set_opponent`, plus discriminator.l2_reg·(‖W‖² + ‖b‖²)/2 on D's output
        layer, as in every Eq. 5 step: backward, clip at relaxed.grad_clip (or, with `rescale` > 0,
        rescale the gradient to that global norm), Adam (discriminator.lr). Returns the loss,
        penalty included."""
        assert self.opponent is not None, "call set_opponent first"
        d = self.discriminator
        d.train()
        args = tuple(a.to(self.device) if isinstance(a, Tensor) else a for a in args)
        loss = objective(d, self.opponent, self.rng, *args)
        if self.cfg.discriminator.l2_reg:
            loss = loss + self.cfg.discriminator.l2_reg * output_l2(d.out.weight, d.out.bias)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if rescale > 0:
            rescale_gradients(list(d.parameters()), rescale)
        else:
            torch.nn.utils.clip_grad_norm_(d.parameters(), self.cfg.relaxed.grad_clip)
        self.opt.step()
        return loss.item()

    def objective_steps(self, objective: Callable[..., tuple[Tensor, dict[str, float]]], batches: Tensor,
                        *args: Any) -> dict[str, float]:
        """One step of φ for each of `batches` (k, B, T), down `objective(discriminator, generator,
        rng, batch, *args)` → (loss, stats), `generator` the copy of G from `set_opponent`: backward,
        clip at generator.grad_clip, Adam (discriminator.lr). Returns the mean of the loss
        ("loss") and of each stat over the steps (MaskGAN's D rounds: one call, many steps)."""
        assert self.opponent is not None, "call set_opponent first"
        d = self.discriminator
        d.train()
        totals: dict[str, float] = {}
        for batch in batches.to(self.device):
            args_ = tuple(a.to(self.device) if isinstance(a, Tensor) else a for a in args)
            loss, stats = objective(d, self.opponent, self.rng, batch, *args_)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(d.parameters(), self.cfg.generator.grad_clip)
            self.opt.step()
            for key, value in {"loss": loss.item(), **stats}.items():
                totals[key] = totals.get(key, 0.0) + value / len(batches)
        return totals

    def set_data(self, real: Tensor) -> None:
        self.real = real.to(self.device)

    def train(self, fake: Tensor, epochs: int, real: Tensor | None = None) -> DiscStats:
        """`epochs` passes over real and `fake` (S, T) sequences, shuffled together (Eq. 5). The
        real ones: `real` (S', T) when given (a sample drawn by the trainer), else the data
        this role holds (`set_data`)."""
        real = self.real if real is None else real.to(self.device)
        assert real is not None, "call set_data first, or pass real"
        d, dc = self.discriminator, self.cfg.discriminator
        x = torch.cat([real, fake.to(self.device)])
        y = torch.cat([torch.ones(len(real), dtype=torch.long, device=self.device),
                       torch.zeros(len(fake), dtype=torch.long, device=self.device)])
        d.train()
        self.tally.zero_()
        batches = 0
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=self.rng, device=self.device)
            for i in range(0, len(order), dc.batch_size):
                idx = order[i:i + dc.batch_size]
                full = len(idx) == dc.batch_size
                (self.graphed if self.graphed is not None and full else self._step)(x[idx], y[idx])
                batches += 1
        total, correct_real, correct_fake = self.tally.tolist()  # the one wait for the device
        n = max(epochs, 1)
        return DiscStats(total / max(batches, 1), correct_real / (n * len(real)),
                         correct_fake / (n * len(fake)))

    def _step(self, xb: Tensor, yb: Tensor) -> None:
        """One Eq. 5 step on a batch; its loss and hits are added to `tally` on the device
        (no host sync, so on a GPU it can be recorded into a CUDA graph)."""
        d, dc = self.discriminator, self.cfg.discriminator
        logits = d(xb, generator=self.rng)
        loss = discriminator_loss(logits, yb, d.out.weight, d.out.bias, dc.l2_reg)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        hit = logits.argmax(-1) == yb
        self.tally += torch.stack([loss.detach(), (hit & (yb == 1)).sum().float(), (hit & (yb == 0)).sum().float()])

    @torch.no_grad()
    def heldout_accuracy(self, real: Tensor, fake: Tensor, *, chunk: int = 1024) -> float:
        """D's accuracy on sequences it was not trained on, `real` (S, T) against `fake` (S', T),
        with dropout off: a D of two classes (one log-odds a row), the mean of its hit
        rates on real (score > 0) and on fake (score <= 0); RelGAN's, whose logits are relative,
        the share of (real, fake) row pairs and representations it ranks right. 0.5: chance."""
        d = self.discriminator
        was_training, p = d.training, d.dropout
        d.eval()
        if isinstance(d, RelGANDiscriminator):  # its dropout has no switch (as RelGAN's code)
            d.dropout = 0.0

        def scores(x: Tensor) -> Tensor:
            return torch.cat([d.score(c) for c in x.to(self.device).split(chunk)])  # (S, 1 or R)

        s_real, s_fake = scores(real), scores(fake)
        d.train(was_training)
        d.dropout = p
        if s_real.shape[1] == 1:
            return 0.5 * ((s_real > 0).float().mean() + (s_fake <= 0).float().mean()).item()
        n = min(len(s_real), len(s_fake))
        return (s_real[:n] > s_fake[:n]).float().mean().item()

    def device_name(self) -> str:
        return str(self.device)

    def weights(self) -> StateDict:
        return cpu_state(self.discriminator)

    def set_lr(self, lr: float) -> None:
        """D's Adam rate from now on (MaskGAN pretrains D at a rate of its own)."""
        _set_lr(self.opt, lr)

    def state_dict(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.state_dict(), "opt": self.opt.state_dict(),
                "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt.load_state_dict(state["opt"])
        _set_lr(self.opt, self.cfg.discriminator.lr)
        if self.graphed is not None:
            self.graphed.reset()  # the optimizer's state tensors were replaced: record anew
        restore_rng(self.rng, state["rng"])


class StaleWeights(RuntimeError):
    """A rollout worker was asked to compute with a version of the weights it does not hold:
    its actor was restarted (Ray rebuilt it from its constructor: version -1) since the pool
    last armed it, or it missed a set_weights."""


class RolloutWorker:
    """A copy of G_β and D_φ that turns sequences into Eq. 4 rewards.

    `version` is the weights version it holds: -1 from the constructor (which is what a
    restarted actor is), then whatever `set_weights` gave it. Every call from the pool says
    which version it expects (`expect`), and a worker that does not hold it refuses with
    `StaleWeights` instead of computing with the wrong weights; the pool then `rearm`s it.
    """

    def __init__(self, cfg: Config, seed: int, *, threads: int = 0):
        _set_threads(threads)
        self.cfg, self.device = cfg, pick_device()
        self.policy = make_generator(cfg, seed).requires_grad_(False).to(self.device)
        # LeakGAN's policy holds the D it samples through: the worker scores with that same copy
        self.discriminator = (self.policy.leak if isinstance(self.policy, LeakGANPolicy) else
                              make_discriminator(cfg, seed).requires_grad_(False).eval().to(self.device))
        self.rng = torch.Generator(self.device).manual_seed(seed)
        self.version = -1
        # what Eq. 4 averages; a reward built on the training data waits for set_data
        self.reward: Reward | None = (None if needs_data(cfg.rollout.reward)
                                      else make_reward(cfg, None, self.discriminator))

    def _check(self, expect: int | None) -> None:
        if expect is not None and expect != self.version:
            raise StaleWeights(f"rollout worker holds weights version {self.version}, the call expects {expect}")

    def set_data(self, real: Tensor, *, expect: int | None = None) -> None:
        """The training sequences, for a reward that needs them (rollout.reward: bleu, ...)."""
        self._check(expect)
        self.reward = make_reward(self.cfg, real.to(self.device), self.discriminator)

    def set_weights(self, policy: StateDict | None, discriminator: StateDict | None,
                    version: int = 0, *, expect: int | None = None) -> None:
        """Load β and/or φ (None: keep the one held) as weights `version`."""
        self._check(expect)
        if policy is not None:
            self.policy.load_state_dict(policy)
        if discriminator is not None:
            self.discriminator.load_state_dict(discriminator)
        self.version = version

    def rearm(self, policy: StateDict | None, discriminator: StateDict | None, version: int, *,
              data: Tensor | None, seed: int) -> bool:
        """Bring this worker to weights `version` whatever it holds; if it was rebuilt from its
        constructor (a restarted actor), give it the data again and a fresh random stream
        seeded with `seed`. Returns whether it had been rebuilt."""
        rebuilt = self.version == -1
        self.set_weights(policy, discriminator, version)
        if rebuilt:
            if data is not None:
                self.set_data(data)
            self.rng.manual_seed(seed)
        return rebuilt

    def rewards(self, seqs: Tensor, *, expect: int | None = None) -> Tensor:
        """Eq. 4 rewards (B, T) for `seqs` (B, T), scored by P(real) under D_φ (or by the
        configured reward); with `expect`, only if this worker holds that weights version."""
        self._check(expect)
        if self.reward is None:
            raise RuntimeError(f"rollout.reward={self.cfg.rollout.reward} needs the data: call set_data first")
        if (constant := getattr(self.reward, "constant", None)) is not None:  # Eq. 4 of a constant score
            return torch.full(seqs.shape, float(constant))
        rewards = mc_rewards(self.policy, self.reward, seqs.to(self.device), self.cfg.rollout.num_rollouts,
                             generator=self.rng, score_rollouts=getattr(self.reward, "score_rollouts", None),
                             stride=self.cfg.rollout.stride)
        return rewards.cpu()

    def sample(self, num: int, *, expect: int | None = None) -> Tensor:
        """`num` sequences (num, T) from the policy held (LeakGAN's negatives and evaluation
        samples, which pass D at every token), drawn from this worker's stream."""
        self._check(expect)
        return self.policy.sample(num, generator=self.rng).cpu()

    @torch.no_grad()
    def infill(self, seqs: Tensor, present: Tensor, *, expect: int | None = None) -> Tensor:
        """MaskGAN: `seqs` (B, T) with the tokens where `present` is False sampled by the policy
        held (no dropout), from this worker's stream."""
        self._check(expect)
        return self.policy.infill(seqs.to(self.device), present.to(self.device), generator=self.rng)[0].cpu()

    def device_name(self) -> str:
        return str(self.device)

    def get_rng_state(self, *, expect: int | None = None) -> Tensor:
        self._check(expect)
        return self.rng.get_state()

    def set_rng_state(self, state: Tensor, *, expect: int | None = None) -> None:
        self._check(expect)
        restore_rng(self.rng, state)


def sample_shares(num: int, workers: int) -> list[int]:
    """How many of `num` samples each of `workers` draws: as even as can be."""
    return [num // workers + (i < num % workers) for i in range(workers)]


class LocalRolloutPool:
    """Rollout workers in this process, one after another: the pool of `--no-ray` runs and
    tests. Its interface is `distributed.pool.RolloutPool`'s, whose actors run in parallel."""

    restarts = 0  # nothing here restarts
    on_restart = None  # called (worker, restarts) as the Ray pool counts a restart

    def count_unseen_restarts(self) -> int:
        return 0

    def __init__(self, cfg: Config, seed: int, size: int = 1):
        self.workers = [RolloutWorker(cfg, seed + i) for i in range(size)]
        self.version = 0
        for w in self.workers:
            w.set_weights(None, None, 0)

    def __len__(self) -> int:
        return len(self.workers)

    def set_weights(self, policy: StateDict | None, discriminator: StateDict | None) -> None:
        """A new version of β and/or φ (None: keep the one held) for every worker."""
        self.version += 1
        for w in self.workers:
            w.set_weights(policy, discriminator, self.version)

    def sample(self, num: int) -> Tensor:
        """`num` sequences from the workers' policy, split between them as the Ray pool does."""
        return torch.cat([w.sample(n) for w, n in zip(self.workers, sample_shares(num, len(self.workers))) if n])

    def set_data(self, real: Tensor) -> None:
        for w in self.workers:
            w.set_data(real)

    def rewards(self, seqs: Tensor) -> Tensor:
        """Eq. 4 rewards (B, T) for `seqs` (B, T), each worker scoring its share of the rows."""
        shares = [s for s in seqs.tensor_split(len(self.workers)) if len(s)]  # as np.array_split
        return torch.cat([w.rewards(s) for w, s in zip(self.workers, shares)])

    def infill(self, seqs: Tensor, present: Tensor) -> Tensor:
        """MaskGAN's in-fills of `seqs` (B, T) where `present` is False, the rows split between
        the workers as `rewards` splits them."""
        parts = [(s, m) for s, m in zip(seqs.tensor_split(len(self.workers)), present.tensor_split(len(self.workers)))
                 if len(s)]
        return torch.cat([w.infill(s, m) for w, (s, m) in zip(self.workers, parts)])

    def rng_states(self) -> list[Tensor]:
        return [w.get_rng_state() for w in self.workers]

    def set_rng_states(self, states: list[Tensor]) -> None:
        """Restore the workers' random streams (a pool of another size starts each afresh)."""
        if len(states) == len(self.workers):
            for w, state in zip(self.workers, states):
                w.set_rng_state(state)

    def devices(self) -> list[str]:
        return [w.device_name() for w in self.workers]

    def node_ids(self) -> list[str]:
        return []

    def shutdown(self) -> None:
        self.workers = []
