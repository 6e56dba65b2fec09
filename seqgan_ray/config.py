"""Configuration: dataclass defaults, then a YAML file, then `key=value` overrides.

Every section is a dataclass that owns its fields and their docstrings; `Config` composes
them. Merging is strict: an unknown key is an error that names the closest valid key, and
a value of the wrong type or out of range is an error that names the key.

The dataclass defaults are the *quick* synthetic run that `python run.py` performs on a
laptop in minutes; `configs/paper_synthetic.yaml` sets the paper's whole schedule. The
model sizes, learning rates and rollout settings default to the paper's.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRECISIONS = ("float32", "bfloat16")  # discriminator.precision
GENERATORS = ("lstm", "latent_lstm", "relational_memory", "leakgan")  # generator.kind
DISCRIMINATORS = ("cnn", "relgan")          # discriminator.kind
RELAXED_LOSSES = ("rsgan", "standard")      # relaxed.loss
SCHEDULES = ("exp", "lin", "constant")      # relaxed.schedule
FEEDS = ("hard", "soft", "straight_through")  # relaxed.feed
RESCALES = ("rank", "reference", "none")    # leakgan.rescale
COSINES = ("token", "batch_mean")           # leakgan.cosine
MATCHES = ("mmd", "mean")                   # textgan.match
MASK_MODES = ("random", "contiguous")       # maskgan.mask_mode
ESTIMATORS = ("mc", "critic")               # rollout.estimator
MASKGAN_METHODS = ("maskgan", "maskmle")    # train.method values whose G and D are MaskGAN's seq2seq models

# What a key's value touches, for the tools that compare configs (one role per key):
SHAPE = "shape"              # the shapes of the saved tensors (and so pretraining): checkpoint.py
PRETRAINING = "pretraining"  # what pretraining computes: a sweep over it pretrains in every trial
ADVERSARIAL = "adversarial"  # only the adversarial phase: runs that differ in it share pretraining
LENGTH = "length"            # how long the adversarial phase runs: a finished run can be extended
OUTPUT = "output"            # where and how much is written, never a number: runs may differ in it
SECTION_ROLES = {"data": PRETRAINING, "generator": PRETRAINING, "discriminator": PRETRAINING,
                 "rollout": ADVERSARIAL, "relaxed": ADVERSARIAL, "textgan": ADVERSARIAL, "leakgan": ADVERSARIAL,
                 "maskgan": ADVERSARIAL, "train": PRETRAINING, "run": OUTPUT}  # unless a field says
METHOD_SECTIONS = ("relaxed", "textgan", "leakgan", "maskgan")  # read only by the methods that say so (an algorithm's `reads`)
# Keys of the shared sections that only some methods read, also by their `reads` ("rollout": these)
METHOD_KEYS = ("rollout.num_rollouts", "rollout.update_rate", "rollout.reward", "rollout.stride",
               "rollout.bleu_n", "train.sampling_step")
# Keys that only some models or rewards read: selector -> {its value: the keys that value reads}
MODEL_READS = {
    "generator.kind": {"lstm": ("generator.hidden_dim",), "leakgan": ("generator.hidden_dim",),
                       "latent_lstm": ("generator.hidden_dim", "generator.latent_dim"),
                       "relational_memory": ("generator.mem_slots", "generator.head_size", "generator.num_heads")},
    "discriminator.kind": {"cnn": (), "relgan": ("discriminator.num_rep",)},
    "rollout.reward": {"discriminator": (), "bleu": ("rollout.bleu_n",)},  # one of your own: not checked
}


def setting(default: Any, *, role: str | None = None, min: float | None = None, above: float | None = None,
            below: float | None = None, max: float | None = None, what: str = "", why: str = "") -> Any:
    """A config field with its constraints and role (see SHAPE ... OUTPUT; None: its section's):
    the value must be >= `min`, > `above`, < `below`, <= `max`; `what` names the value in the
    error ("a learning rate"), `why` explains the bound. `validate` checks them all."""
    bounds = {"min": min, "above": above, "below": below, "max": max}
    meta = {"role": role, "what": what, "why": why, **{k: v for k, v in bounds.items() if v is not None}}
    if isinstance(default, list):  # a fresh list for every Config
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and the fix."""


@dataclass
class DataConfig:
    """The task: the synthetic one (an oracle LSTM and sequences sampled from it) or, with
    `corpus` set, your own text."""

    corpus: str = ""
    """Text to train on: a folder made by `python run.py prepare`, or a text file (one sentence
    a line) that is prepared into the run folder. Empty: the synthetic task. With a corpus,
    vocab_size, seq_len, start_token and eos_token come from the corpus."""
    test_text: str = ""
    """Held-out text (when `corpus` is a text file) for NLL-test and BLEU."""
    vocab_from_test: bool = False
    """Build the vocabulary from test_text's words too, as Texygen does for COCO."""
    test_sample: int = -1
    """Held-out sentences of a text corpus that NLL-test and BLEU use: a sample fixed by the
    corpus alone (the same in every run and resume). -1: the whole test split up to 10,000
    sentences, a 10,000-sentence sample of a larger one."""

    oracle_dir: str = "../shared/data/oracle"
    """Folder with the paper's `target_params.pkl` and `real_data.txt` (relative to the
    working directory). When it is missing, a seeded oracle of the same shape is made. Empty:
    always the seeded oracle (for shapes the paper's oracle does not have, e.g. T = 51)."""
    oracle_seed: int = 88
    """Seed of the generated N(0, 1) oracle used when `oracle_dir` has no target_params.pkl."""
    require_paper_oracle: bool = False
    """Fail instead of generating an oracle when `oracle_dir` has no target_params.pkl."""
    vocab_size: int = setting(5000, above=0, role=SHAPE)
    """V: number of tokens."""
    seq_len: int = setting(20, min=2, role=SHAPE, why="Eq. 4's Monte Carlo rollouts complete the prefixes "
                                                      "of length 1..T-1, and T = 1 has none")
    """T: length of every sequence; at least 2 (Eq. 4 rolls out prefixes of length 1..T-1)."""
    start_token: int = 0
    """Input of the first LSTM step; also an ordinary token that can be emitted."""
    eos_token: int = -1
    """Token that ends a sequence (PAD follows it); -1: fixed-length sequences."""
    num_train: int = setting(9984, above=0)
    """Sequences sampled from a generated oracle as training data (the paper's count)."""
    oracle_emb_dim: int = setting(32, above=0)
    """Embedding size of a generated oracle (the paper's file sets its own)."""
    oracle_hidden_dim: int = setting(32, above=0)
    """Hidden size of a generated oracle."""


@dataclass
class GeneratorConfig:
    """G_θ: an LSTM policy (paper, Section 4 and the reference code), or RelGAN's relational
    memory."""

    kind: str = setting("lstm", role=SHAPE)
    """`lstm` (SeqGAN's, sizes emb_dim and hidden_dim), `latent_lstm` (TextGAN's: the same LSTM
    started from h0 = tanh(z·C0 + b0) with a code z ~ U(−1, 1)^latent_dim per sequence;
    models/latent.py; not with train.method seqgan, whose rollouts would need each sequence's z),
    `relational_memory` (RelGAN's: mem_slots × head_size · num_heads units, embedding emb_dim;
    models/relational.py) or `leakgan` (LeakGAN's Manager and Worker, both LSTMs of hidden_dim,
    steered by D's leaked features; models/leakgan.py; with train.method leakgan)."""
    emb_dim: int = setting(32, above=0, role=SHAPE)
    """Token embedding size."""
    hidden_dim: int = setting(32, above=0, role=SHAPE)
    """LSTM hidden size."""
    latent_dim: int = setting(32, above=0, role=SHAPE)
    """latent_lstm: Z, the size of the latent code (and of D's reconstruction of it). The TextGAN
    authors' 900 equals their D's feature count; 32 matches the quick LSTM's hidden size."""
    init_std: float = setting(0.1, above=0)
    """Every parameter starts N(0, init_std), as in the reference code (the LSTM; the relational
    memory starts as RelGAN's code does, each weight at 1/√fan-in)."""
    mem_slots: int = setting(1, above=0, role=SHAPE)
    """relational_memory: memory slots (RelGAN: 1)."""
    head_size: int = setting(256, above=0, role=SHAPE)
    """relational_memory: units per attention head (RelGAN: 256)."""
    num_heads: int = setting(2, above=0, role=SHAPE)
    """relational_memory: attention heads (RelGAN: 2)."""
    lr: float = setting(0.01, above=0, what="a learning rate")
    """Adam learning rate for MLE pretraining."""
    adv_lr: float = setting(0.01, above=0, what="a learning rate", role=ADVERSARIAL)
    """Adam learning rate for the policy-gradient updates (Eq. 8)."""
    grad_clip: float = setting(5.0, above=0)
    """Global gradient-norm clip for both kinds of update."""
    batch_size: int = setting(64, above=0)
    """Batch of MLE pretraining and of each policy-gradient step."""
    shuffle: bool = True
    """Shuffle the training sequences every MLE epoch; false walks them in the file's order
    every epoch, the same batches each time, as the reference code's data loader does."""


@dataclass
class DiscriminatorConfig:
    """D_φ: a CNN over embeddings with max-over-time pooling and one highway layer."""

    kind: str = setting("cnn", role=SHAPE)
    """`cnn` (SeqGAN's: the paper's windows, two classes) or `relgan` (RelGAN's: num_rep
    embedded representations, windows 2-5 of 300 maps, one logit each; trained only by the
    relaxed GANs, train.method relgan or gsgan)."""
    num_rep: int = setting(64, above=0, role=SHAPE)
    """relgan: embedded representations; emb_dim must be a multiple (RelGAN: 64 of 64 / 64 = 1 unit)."""
    emb_dim: int = setting(64, above=0, role=SHAPE)
    """Token embedding size."""
    filter_sizes: list[int] | None = setting(None, role=SHAPE)
    """Window sizes; empty means the paper's rule for `data.seq_len` (see models/discriminator.py);
    for `relgan`, RelGAN's 2, 3, 4, 5."""
    num_filters: list[int] | None = setting(None, role=SHAPE)
    """Feature maps per window size; empty means the paper's rule (`relgan`: 300 each)."""
    dropout: float = setting(0.25, min=0, below=1)
    """Probability of dropping a unit before the output layer."""
    l2_reg: float = setting(0.2, min=0)
    """L2 penalty on the output layer, λ·(‖W‖²+‖b‖²)/2 as in SeqGAN's reference code, in every D
    step: pretraining, SeqGAN's and LeakGAN's rounds, and the relaxed GANs' and TextGAN's
    adversarial steps. RelGAN's, TextGAN's and LeakGAN's reference Ds have none: their configs set
    0."""
    lr: float = setting(1e-4, above=0, what="a learning rate")
    """Adam learning rate."""
    batch_size: int = setting(64, above=0)
    """Batch of discriminator training."""
    precision: str = "float32"
    """float32, or bfloat16: matmuls in bfloat16 with float32 weights and optimizer state
    (about 1.7x faster training here; needs AVX-512 BF16/AMX or a bf16 GPU to pay off). Both
    kinds of D (RelGAN's: its convolutions, highway and fc layers)."""


@dataclass
class RolloutConfig:
    """The Monte Carlo search of Eq. 4, done by the delayed rollout policy G_β."""

    num_rollouts: int = setting(16, above=0)
    """N: completions sampled from every prefix."""
    update_rate: float = setting(0.8, min=0, below=1)
    """r in β ← r·β + (1−r)·θ after every generator update; 0 means β = θ."""
    reward: str = "discriminator"
    """What scores a completed sequence in Eq. 4: `discriminator` (D_φ's P(real): SeqGAN),
    `bleu` (BLEU-bleu_n against the training data: the paper's PG-BLEU; D is then not
    trained), `constant` (1 for every sequence: REINFORCE with no signal, the control; no D,
    except under train.method leakgan, whose D's features steer the Manager), or
    `module:Class` of your own (docs/rewards.md). LeakGAN takes discriminator or constant."""
    stride: int = setting(1, min=1)
    """c: roll out from every c-th prefix only (lengths c, 2c, ... below T), about 1/c of the
    work; each token takes the estimate of the next rolled-out prefix, and the tokens after the
    last one D of the whole sequence (LeakGAN's rule). 1: Eq. 4 exactly."""
    bleu_n: int = setting(4, min=2, what="BLEU-2 and up")
    """n of the `bleu` reward: BLEU-n with uniform weights and Texygen's smoothing."""
    chunk_rows: int = setting(0, min=0)
    """Rows of logits per sampling block; 0 picks about 5 MB of them, which stays in the
    CPU's cache (256 rows at V = 5000: 2-3x faster than 2048)."""
    estimator: str = setting("mc", role=ADVERSARIAL)
    """How Eq. 8 weighs each token: `mc`, Eq. 4's Monte Carlo rollouts; `critic`, MaskGAN's idea
    applied to SeqGAN: a value net V(Y_1:t) (an LSTM of generator.hidden_dim on the learner)
    learns to predict D's score of the completed sequence, and token t is weighed by its
    advantage V(Y_1:t) − V(Y_1:t−1) (the last by D(Y) − V(Y_1:T−1)); no rollouts. Only with
    train.method seqgan and rollout.reward discriminator (docs/maskgan.md)."""
    critic_lr: float = setting(1e-3, above=0, what="a learning rate", role=ADVERSARIAL)
    """Adam rate of the `critic` estimator's value net."""
    critic_steps: int = setting(1, min=1, role=ADVERSARIAL)
    """Steps of the `critic` estimator's value net per G step: the first on the G step's batch,
    each other on a fresh batch of G's samples scored by D, so that V keeps up with D."""


@dataclass
class RelaxedConfig:
    """The relaxed GANs (train.method relgan, gsgan): G's tokens reach D as Gumbel-softmax soft
    tokens softmax(β·(logits + g)), so D's loss is differentiable in θ; no rollouts. β, the
    inverse temperature, follows a schedule over the adversarial iterations. textgan reads
    d_steps and grad_clip too; another method refuses these keys set."""

    loss: str = ""
    """`rsgan`: the relativistic standard GAN loss (RelGAN), D: −log σ(D(x) − D(G(z))), G: −log
    σ(D(G(z)) − D(x)); `standard`: the non-saturating GAN loss, D: −log σ(D(x)) − log(1 −
    σ(D(G(z)))), G: −log σ(D(G(z))). Empty: the method's (relgan rsgan, gsgan standard)."""
    feed: str = ""
    """What the generator reads after each token: `hard`, the sampled token's embedding (RelGAN's
    code; gradients reach θ through each step's logits and the recurrent state, which is not
    detached: only the sampled token's path is cut); `soft`, the soft token's mix of embeddings
    (GSGAN: gradients run through the fed-back inputs too, but the tokens G is trained on are then
    samples of a soft-fed sampler, not of the hard-fed policy that evaluation samples:
    eval/sampler_oracle_nll scores them); `straight_through`, the sampled token's embedding
    forward and the soft token's gradient backward, emb[tok] + (soft − soft.detach())·emb (the
    policy's own samples, with gradients through the inputs). Empty: the method's (relgan hard,
    gsgan soft)."""
    temperature_start: float = setting(0.0, min=0)
    """β at the first iteration; 0: the method's (relgan 1, as RelGAN; gsgan 0.2, i.e. τ = 5
    annealed toward 0, as GSGAN's "start with a relatively large τ")."""
    temperature_max: float = setting(100.0, above=0)
    """β_max, reached after temperature_steps iterations (RelGAN sweeps 2, 5, 10, 100, 1000)."""
    schedule: str = "exp"
    """How β goes from temperature_start to temperature_max over iteration n = 0, 1, ...: `exp`,
    β_0·(β_max/β_0)^(n/N) (RelGAN's β_max^(n/N)); `lin`, β_0 + (β_max − β_0)·n/(N − 1), as
    RelGAN's; `constant`, β_max throughout."""
    temperature_steps: int = setting(0, min=0)
    """N of the schedule: β_max at iteration n = N (n counts from 0). 0: train.adv_iterations − 1,
    so the last iteration has β_max, as the paper states. Both public RelGAN codes fix N = 5000
    while running 2,000-3,000 iterations (β ends at β_max^0.4-0.6): set 5000 for theirs."""
    d_steps: int = setting(5, above=0)
    """D steps (a fresh real batch and fresh soft fakes each) per iteration (RelGAN: 5; the
    TextGAN authors': 1)."""
    grad_clip: float = setting(5.0, above=0)
    """Global gradient-norm clip of D's steps (RelGAN: 5; G's is generator.grad_clip). The TextGAN
    authors' optimiser does not clip but rescales every gradient to norm 5: textgan.grad_rescale."""


@dataclass
class TextGANConfig:
    """TextGAN (Zhang, Gan, Carin: "Generating Text via Adversarial Training", NIPS 2016
    workshop; "Adversarial Feature Matching for Text Generation", ICML 2017), train.method
    textgan: G (generator.kind latent_lstm) feeds its soft-argmax softmax(L·logits) back and to
    D, and steps down a distance between D's features of real and generated batches; D also
    reconstructs G's latent code. Its D steps and their clip are relaxed.d_steps and
    relaxed.grad_clip. docs/relaxed.md, "TextGAN"."""

    match: str = "mmd"
    """G's objective over D's pooled features of a real and a generated batch: `mmd`, the
    Gaussian-kernel maximum mean discrepancy summed over `bandwidths` (the ICML paper; the
    authors' Theano code), or `mean`, the root mean square difference of the two batches'
    feature means (the workshop paper's matching of means; the authors' TF code)."""
    bandwidths: list[float] = setting([20.0])
    """σ of the Gaussian kernels exp(−‖a − b‖²/(2σ²)) that `mmd` sums, each > 0. The authors'
    Theano code: [20]; Texygen's: 1e-6 ... 1e6 (19 values, with σ² in place of σ)."""
    soft_argmax: float = setting(1000.0, above=0)
    """L of the soft-argmax softmax(L·logits) that G feeds back and D reads (the authors': 1000)."""
    noise: bool = True
    """Add Gumbel noise to the logits before the soft-argmax, so each soft token is (to float
    precision at L = 1000) the one-hot of an exact sample of G's softmax: the adversarial phase
    trains the distribution NLL-oracle samples and NLL-test scores. false: the authors'
    noise-free soft-argmax, whose sequences are the greedy decodes of each code z."""
    mmd_weight: float = setting(0.001, min=0)
    """λ_fm: D's loss subtracts this times G's distance (`match`), so D maximises it (the
    authors' 0.001; Texygen adds it, flipping the sign)."""
    grad_rescale: float = setting(0.0, min=0)
    """> 0: every adversarial step's gradient, G's and D's, is rescaled to this global norm, as the
    authors' optimiser does with 5 (theano/model/optimizers.py: its `if tensor.ge(norm, 5)` tests
    a symbolic tensor, which Python always finds true, so every gradient is scaled to norm 5, small
    ones scaled up). 0: clipped instead, G's at generator.grad_clip and D's at relaxed.grad_clip."""
    recon_weight: float = setting(0.001, min=0)
    """λ_recon: D's loss adds this times the mean squared error of its reconstruction of the
    code z from the fakes' features, so D minimises it (the authors' 0.001, on their
    cross-entropy of (z + 1)/2; Texygen subtracts it, flipping the sign)."""


@dataclass
class LeakGANConfig:
    """LeakGAN (train.method leakgan, generator.kind leakgan; docs/leakgan.md): D leaks its
    features of the sentence so far to G's Manager, whose goals steer the Worker."""

    step_size: int = setting(4, above=0, role=PRETRAINING)
    """c: a goal lasts c tokens, and rewards are rolled out at every c-th prefix (set
    rollout.stride to the same value). Must divide data.seq_len, and be shorter than a text
    corpus's longest sentence (whose length sets T; its last block may be shorter). Reference: 4."""
    goal_size: int = setting(16, above=0, role=SHAPE)
    """K: the goal's projection, which weighs the Worker's K logits of each token. Reference: 16."""
    temperature_trick: float = setting(1.0, above=0, role=PRETRAINING)
    """The reference's trick: 1.5 multiplies the logits of the first two tokens of every sample,
    and of all tokens of D's negatives and of evaluation samples. Its authors withdrew it (their
    `No Temperature/` code); 1.0 is off."""
    rescale: str = "rank"
    """How the Manager's rewards are rescaled across the batch, each reward point apart:
    `rank`, σ(δ·(rank/B − 1/2)) of the reward's true rank (the paper's bootstrapped rescaled
    activation); `reference`, the reference code's, which ranks in the order values first appear
    in the batch, so the reward no longer depends on D (Python 3; an ablation); `none`, D's
    scores as they are. Then divided by rollout.num_rollouts, as the reference does."""
    rescale_delta: float = setting(16.0, above=0)
    """δ of the rescale (reference: 16)."""
    cosine: str = "token"
    """`token`: each reward (and each intrinsic reward) weighs its own cosine, as the paper's
    gradients; `batch_mean`: the reference code's, whose tf.losses.cosine_distance reduces to one
    mean over the batch, so the Manager's external reward enters only as the batch's sum."""
    fresh_positives: bool = setting(True, role=PRETRAINING)
    """D's real sequences each round: true, fresh ones as many as train.num_negatives (the
    synthetic task: new oracle samples, as the reference; text: a fresh uniform sample of the
    corpus); false, as SeqGAN does (train.num_real)."""
    pretrain_rounds: int = setting(10, above=0, role=PRETRAINING)
    """Pretraining interleaves D and G as the reference does: this many rounds, each of
    train.pretrain_d_rounds / pretrain_rounds D rounds, then train.pretrain_g_epochs /
    pretrain_rounds MLE epochs (the Manager fitted to real feature moves). Reference: 10 rounds
    of 5 D rounds (3 epochs each) and 8 MLE epochs."""


@dataclass
class MaskGANConfig:
    """MaskGAN (Fedus, Goodfellow, Dai, ICLR 2018), train.method maskgan (docs/maskgan.md): G, a
    seq2seq LSTM with attention, fills in the masked tokens of a real sequence; D, the same
    architecture, scores every token real or fake given the masked sequence; G steps by REINFORCE
    on the missing tokens with rewards log D_t and a critic's baseline. Its G and D are these
    models (generator.kind and discriminator.kind are not read; generator.lr is MaskMLE's rate,
    generator.adv_lr G's, discriminator.lr D's in the adversarial phase (d_pretrain_lr in its
    pretraining), generator.grad_clip every clip; train.d_steps,
    train.k_epochs and rollout.* are not read: maskgan.d_steps sets D's steps)."""

    hidden_dim: int = setting(32, above=0, role=SHAPE)
    """Units of every LSTM layer, and the embedding size, of G and D (the reference's PTB run: 650)."""
    num_layers: int = setting(1, above=0, role=SHAPE)
    """LSTM layers of each encoder and decoder (the reference: 2)."""
    keep_prob: float = setting(0.5, above=0, max=1, role=PRETRAINING)
    """G's variational dropout keep probability, when it is trained (the reference's PTB run: 0.33971)."""
    d_keep_prob: float = setting(0.75, above=0, max=1, role=PRETRAINING)
    """D's variational dropout keep probability, when it is trained (the reference's PTB run: 0.71940)."""
    present_rate: float = setting(0.5, above=0, max=1, role=PRETRAINING)
    """Share of the tokens shown to G and D; the rest are filled in (the reference: 0.5)."""
    mask_mode: str = setting("random", role=PRETRAINING)
    """`random` (each token missing with chance 1 − present_rate, the reference's default) or
    `contiguous` (one block of (1 − present_rate)·n of a sentence's n words, the PTB command's)."""
    discount: float = setting(0.89, min=0, max=1)
    """γ of the discounted returns Σ_s γ^(s−t) r_s (the reference's PTB command: 0.89072)."""
    advantage_clip: float = setting(5.0, above=0)
    """The advantage (return − critic's value) is clipped to ± this (the reference: 5)."""
    critic_lr: float = setting(5e-7, above=0, what="a learning rate")
    """Adam rate of the critic's value head (the reference's PTB command: 5.18e-7)."""
    d_steps: int = setting(2, above=0)
    """D steps (a fresh real batch, mask and in-fill each) before every G step (the reference's
    dis_train_iterations: 2 for PTB)."""
    d_pretrain_lr: float = setting(5e-3, above=0, what="a learning rate", role=PRETRAINING)
    """D's Adam rate in its pretraining rounds (the reference's dis_pretrain_learning_rate: 5e-3);
    the adversarial phase's D steps use discriminator.lr."""


@dataclass
class TrainConfig:
    """The schedule of Algorithm 1. Defaults: a quick laptop run; see paper_synthetic.yaml."""

    method: str = setting("seqgan", role=ADVERSARIAL)
    """What follows pretraining, for adv_iterations iterations: `seqgan` (Algorithm 1; its
    reward is rollout.reward), `mle` (one more MLE epoch an iteration: the MLE baseline as long
    as the adversarial phase) or `scheduled_sampling` (the same epochs, feeding the model's
    own samples as inputs; Bengio et al. 2015), `relgan` or `gsgan` (the relaxed GANs: G steps
    through D's loss on Gumbel-softmax soft tokens, no rollouts; `relaxed.*`, docs/relaxed.md),
    `textgan` (G matches D's features of real and soft-argmax batches by MMD or by their means;
    `textgan.*`), `leakgan` (G's Manager reads D's leaked features; `leakgan.*`), `maskgan` (a
    seq2seq G fills in masked tokens, rewarded per token by D with a critic's baseline;
    `maskgan.*`, docs/maskgan.md), `maskmle` (its baseline: MaskGAN's models, one more MaskMLE
    epoch an iteration), or your own algorithm: a name it registered, or module:Class
    (docs/design.md, "How to add an algorithm").
    A method brings its own models and settings for the keys a run does not set (relgan: the
    relational memory and RelGAN's D; textgan: the latent-code LSTM; leakgan: its generator, rates,
    stride and update rate; see each algorithm's `defaults`); `run.py --print-config` shows them."""
    sampling_step: float = setting(0.002, above=0, max=1, role=ADVERSARIAL)
    """scheduled_sampling: the chance that an input is the model's own sample starts at 0 and
    rises by this every epoch, up to 1 (0.002: the reference code's schedule_sampling.py)."""
    pretrain_g_epochs: int = setting(25, min=0)
    """MLE epochs over the training data (paper: 120)."""
    pretrain_workers: int = setting(0, min=0)
    """0: MLE pretraining in the learner. N >= 1: on Ray Train with N data-parallel workers
    streaming a text corpus's Parquet shards (resources: the cluster file's pretrain_worker)."""
    pretrain_d_rounds: int = setting(3, min=0)
    """Rounds of: sample negatives, then `pretrain_d_epochs` epochs on real + fake (paper: 50)."""
    pretrain_d_epochs: int = setting(1, min=0)
    """Epochs per discriminator pretraining round (paper: 3)."""
    adv_iterations: int = setting(12, min=0, role=LENGTH)
    """Adversarial iterations (paper: 200)."""
    g_steps: int = setting(1, above=0, role=ADVERSARIAL)
    """Policy-gradient batches per adversarial iteration."""
    d_steps: int = setting(1, min=0, role=ADVERSARIAL)
    """Discriminator rounds (fresh negatives each) per adversarial iteration (paper: 5)."""
    k_epochs: int = setting(1, min=0, role=ADVERSARIAL)
    """Epochs over real + fake per discriminator round (paper: 3)."""
    num_negatives: int = setting(9984, above=0)
    """Generated sequences per discriminator round (paper: as many as the real data)."""
    num_real: int = -1
    """Real sequences per discriminator round, a fresh uniform sample of the training data
    each round. -1: the synthetic task's whole training set (the paper), a text corpus's
    num_negatives (the whole split when it is smaller), so D sees real and fake 1:1 and a
    round costs the same whatever the corpus's size."""
    eval_every: int = setting(5, above=0)
    """Evaluate NLL-oracle every this many epochs / iterations (and at each phase's end)."""
    eval_samples: int = setting(9984, above=0)
    """Generator samples scored by the oracle for NLL-oracle."""
    checkpoint_every: int = setting(10, above=0, role=OUTPUT)
    """Write a checkpoint every this many steps of a phase (MLE epochs, D rounds, adversarial
    iterations), and at each phase's end."""
    checkpoint_every_s: float = setting(300.0, min=0, role=OUTPUT)
    """Also write one after any step that ends this many seconds or more after the last
    checkpoint (or the run's start), so a crash loses at most this much work plus one step;
    0: by steps only."""
    keep_checkpoints: int = setting(1, above=0, role=OUTPUT)
    """How many of the newest checkpoints to keep; the last of each earlier phase (the
    pretrained G and D, which other runs can start from) is kept as well. A checkpoint of the
    paper's models is about 90 MB (D with its Adam state); writes are atomic, so one is safe."""
    keep_best: str = setting("", role=OUTPUT)
    """A metric (eval/oracle_nll, eval/nll_test, eval/bleu4, eval/self_bleu4, ...): at every
    evaluation that beats the best so far (lower for NLLs and Self-BLEU, higher for BLEU), the
    generator is saved as best_generator.pt and where it was as best.json. Empty: off."""
    cuda_graphs: bool = True
    """On a GPU, replay each discriminator step and each MLE step from a CUDA graph
    (kernels/cuda_graphs.py): the paper's models are so small that there a step is launch overhead,
    hundreds of tiny kernels. Same numbers, several times faster; no effect on a CPU."""


@dataclass
class RunConfig:
    """Where the run goes and what it prints."""

    seed: int = setting(0, role=PRETRAINING)
    """Seeds every role: learner seed, discriminator seed+10, rollout worker i seed+100+i."""
    out_dir: str = "runs"
    """Parent folder of the run folders."""
    name: str = ""
    """Run folder name; empty means a timestamp."""
    num_samples_saved: int = setting(100, min=0)
    """Decoded generator samples written to samples.txt at the end."""
    keep_checkpoints_at_end: bool = True
    """false: when the run finishes, remove its checkpoints/ and keep generator.pt (a few MB): the
    run can be sampled and evaluated, not resumed or extended. A sweep's trials do this (their
    state lives in Tune's checkpoints)."""
    progress: bool = True
    """Print a progress line while training."""


@dataclass
class Config:
    """The whole configuration: one section per part of the trainer."""

    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    relaxed: RelaxedConfig = field(default_factory=RelaxedConfig)
    textgan: TextGANConfig = field(default_factory=TextGANConfig)
    leakgan: LeakGANConfig = field(default_factory=LeakGANConfig)
    maskgan: MaskGANConfig = field(default_factory=MaskGANConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- merging

def all_keys(cfg: Config | None = None) -> list[str]:
    cfg = cfg or Config()
    return [f"{s.name}.{f.name}" for s in dataclasses.fields(cfg)
            for f in dataclasses.fields(getattr(cfg, s.name))]


def unknown_key(key: str, valid: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
    return ConfigError(f"{where}unknown config key '{key}'{hint}")


def _coerce(key: str, value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a field's type, allowing int where float is expected."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0], where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}'{key}' must be a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, args[0], where) for i, v in enumerate(value)]
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation is bool and isinstance(value, bool):
        return value
    if annotation is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{where}'{key}' must be {annotation.__name__}, got {value!r}")


def set_key(cfg: Config, key: str, value: Any, *, where: str = "") -> None:
    """Set `section.field` on `cfg`, checking the key and the value's type."""
    section, _, name = key.partition(".")
    if key not in all_keys(cfg):
        raise unknown_key(key, all_keys(cfg), where)
    sub = getattr(cfg, section)
    hints = typing.get_type_hints(type(sub))
    setattr(sub, name, _coerce(key, value, hints[name], where))


def merge_dict(cfg: Config, data: dict[str, Any], *, where: str = "") -> set[str]:
    """Set every `section: {key: value}` of `data` on `cfg`; the keys set."""
    given: set[str] = set()
    if not isinstance(data, dict):
        raise ConfigError(f"{where}a config must be a mapping of sections, got {type(data).__name__}")
    for section, values in data.items():
        if not isinstance(values, dict):
            raise unknown_key(str(section), [s.name for s in dataclasses.fields(cfg)], where) \
                if not hasattr(cfg, str(section)) else \
                ConfigError(f"{where}section '{section}' must be a mapping of keys")
        for name, value in values.items():
            set_key(cfg, f"{section}.{name}", value, where=where)
            given.add(f"{section}.{name}")
    return given


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not key=value (e.g. rollout.num_rollouts=8)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': cannot parse value: {exc}") from None
    return key.strip(), value


def read_yaml(path: Path) -> Any:
    """The YAML file at `path` (config, sweep, reproduce or cluster file), read as UTF-8 whatever
    the locale; a file that cannot be read, is not UTF-8 or is not YAML is a one-line ConfigError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}, "
                          f"line {line}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None


class _DuplicateKey(yaml.YAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: {key!r} appears twice in one "
                                    f"section; keep one")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ConfigError(f"{what} file {path} does not exist")
    return read_yaml(path) or {}


def load_config(path: str | Path | None = None, overrides: list[str] = (), *, saved: bool = False) -> Config:
    """Defaults, then the YAML file at `path`, then `key=value` overrides, then the defaults
    train.method brings for the keys neither set (`apply_method_defaults`); validated.
    `saved`: `path` is a run's own config.yaml, already resolved when the run started: no
    method defaults, and keys the run does not read are not refused (an older run may have them)."""
    cfg = Config()
    given: set[str] = set()
    if path is not None:
        given |= merge_dict(cfg, _read_yaml(Path(path), "config"), where=f"{path}: ")
    for text in overrides:
        key, value = parse_override(text)
        set_key(cfg, key, value, where="override: ")
        given.add(key)
    if saved:
        validate(cfg, check_reads=False)
    else:
        resolve(cfg, given)
    return cfg


def resolve(cfg: Config, given: set[str], *, check_reads: bool | set[str] = True) -> Config:
    """The method's defaults for the keys not in `given` (`apply_method_defaults`), then `validate`."""
    apply_method_defaults(cfg, given)
    validate(cfg, check_reads=check_reads)
    return cfg


def apply_method_defaults(cfg: Config, given: set[str]) -> dict[str, Any]:
    """Set each key whose value train.method brings (its algorithm's `defaults(cfg)`: its own
    models, stride, update rate, learning rates) unless `given` (the keys a file or an override
    set) names it; the keys and values set."""
    from .algorithms import load_algorithm

    try:  # a registered name or module:Class, so an algorithm of your own brings its defaults too
        method = load_algorithm(cfg.train.method)
    except ConfigError:  # a name not known: validate says so, with the names it knows
        return {}
    defaults = method.defaults(cfg) if hasattr(method, "defaults") else {}
    applied = {key: value for key, value in defaults.items() if key not in given}
    for key, value in applied.items():
        set_key(cfg, key, value, where=f"train.method {cfg.train.method}'s default: ")
    return applied


def load_with_section(path: str | Path, name: str, schema: type, overrides: list[str] = (), *,
                      what: str, hint: str) -> tuple[Config, Any, str]:
    """A config file with one more top-level section (`tune:`, `reproduce:`): the config (defaults,
    the file's config sections, then `overrides`; not yet `resolve`d: a reproduce file's runs may
    change train.method), the section as a `schema` dataclass, the "FILE: " prefix for error
    messages, and the keys the file and the overrides set. An override `<name>.key=value` sets a
    key of the section. Unknown keys in either are errors naming the key."""
    data = _read_yaml(Path(path), what)
    where = f"{path}: "
    section = data.pop(name, None) if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise ConfigError(f"{where}no '{name}:' section ({hint})")
    base = Config()
    given = merge_dict(base, data, where=where)
    names = sorted(f.name for f in dataclasses.fields(schema))
    for text in overrides:
        key, value = parse_override(text)
        if key.startswith(f"{name}."):
            if key.split(".", 1)[1] not in names:
                raise unknown_key(key, [f"{name}.{n}" for n in names], "override: ")
            section[key.split(".", 1)[1]] = value
        else:
            set_key(base, key, value, where="override: ")
            given.add(key)
    for key in section:
        if key not in names:
            raise unknown_key(f"{name}.{key}", [f"{name}.{n}" for n in names], where)
    return base, schema(**section), where, given


def config_from_dict(data: dict[str, Any]) -> Config:
    """A resolved config (`Config.to_dict()`, e.g. handed to a Tune trial) back: no method defaults."""
    cfg = Config()
    merge_dict(cfg, data)
    validate(cfg)
    return cfg


def validate(cfg: Config, *, check_reads: bool | set[str] = True) -> None:
    """Reject values that cannot work, naming the key; with `check_reads`, also keys set that the
    run would not read (`_check_reads`): all of them, or those of a set given."""
    for key, f in _fields():
        _check_bounds(key, _get(cfg, key), f.metadata)
    for key in ("data.test_sample", "train.num_real"):
        if _get(cfg, key) == 0 or _get(cfg, key) < -1:
            raise ConfigError(f"'{key}' must be a number of sentences (>= 1), or -1 for the default, "
                              f"got {_get(cfg, key)}")
    if cfg.train.pretrain_workers and not cfg.data.corpus:
        raise ConfigError("'train.pretrain_workers' (MLE on Ray Train) streams a text corpus's Parquet "
                          "shards; set data.corpus, or leave train.pretrain_workers at 0")
    if cfg.train.pretrain_workers and not cfg.generator.shuffle:
        raise ConfigError("'generator.shuffle' false (the file's order every epoch) is for MLE in one "
                          "process; Ray Train's workers read the shards in a shuffled stream: leave "
                          "train.pretrain_workers at 0, or generator.shuffle true")
    # the registries know their names (imported here, not above: they import this module)
    from .algorithms import load_algorithm
    from .rewards import load_reward

    load_algorithm(cfg.train.method)
    load_reward(cfg.rollout.reward)
    if check_reads:  # a method's own section set for another method: refused (the shared sections'
        # keys that only some runs read are warned about by the commands: unread_keys)
        unread = {k: why for k, why in unread_keys(cfg).items() if k.partition(".")[0] in METHOD_SECTIONS
                  and (check_reads is True or k in check_reads)}
        if unread:
            raise unread_error(unread)
    for key, allowed in (("generator.kind", GENERATORS), ("discriminator.kind", DISCRIMINATORS),
                         ("relaxed.loss", ("",) + RELAXED_LOSSES), ("relaxed.schedule", SCHEDULES),
                         ("relaxed.feed", ("",) + FEEDS), ("textgan.match", MATCHES),
                         ("leakgan.rescale", RESCALES), ("leakgan.cosine", COSINES)):
        if _get(cfg, key) not in allowed:
            empty = " (or empty: the method's)" if "" in allowed else ""
            raise ConfigError(f"'{key}' must be one of {', '.join(a for a in allowed if a)}{empty}, "
                              f"got {_get(cfg, key)!r}")
    if cfg.discriminator.kind == "relgan":
        from .algorithms import is_relaxed

        if not is_relaxed(cfg.train.method) or cfg.train.pretrain_d_rounds:
            raise ConfigError("'discriminator.kind: relgan' scores with one logit a representation and is "
                              "trained only by the relaxed GANs: set train.method to relgan or gsgan and "
                              "train.pretrain_d_rounds to 0 (RelGAN pretrains no D), or use kind cnn")
        if cfg.discriminator.emb_dim % cfg.discriminator.num_rep:
            raise ConfigError(f"'discriminator.emb_dim' ({cfg.discriminator.emb_dim}) must be a multiple of "
                              f"'discriminator.num_rep' ({cfg.discriminator.num_rep})")
    if not cfg.textgan.bandwidths or min(cfg.textgan.bandwidths) <= 0:
        raise ConfigError(f"'textgan.bandwidths' (the kernels' σ) must be a list of numbers > 0, "
                          f"got {cfg.textgan.bandwidths}")
    if cfg.generator.kind == "latent_lstm" and cfg.train.method == "seqgan":
        raise ConfigError("'generator.kind: latent_lstm' draws a code per sequence, which Eq. 4's rollouts "
                          "and Eq. 8 would have to hold: use it with train.method textgan (or mle), "
                          "or kind lstm with seqgan")
    if cfg.train.method == "textgan" and (cfg.generator.kind != "latent_lstm" or cfg.discriminator.kind != "cnn"):
        keys = [k for k, want in (("generator.kind", "latent_lstm"), ("discriminator.kind", "cnn")) if _get(cfg, k) != want]
        raise ConfigError(f"{' and '.join(repr(k) for k in keys)} must be latent_lstm (generator) and cnn "
                          f"(discriminator) for train.method textgan: its G draws a code that D reconstructs "
                          f"from its CNN features, got {', '.join(str(_get(cfg, k)) for k in keys)}")
    _validate_leakgan(cfg)
    _validate_maskgan(cfg)
    if cfg.discriminator.precision not in PRECISIONS:
        raise ConfigError(f"'discriminator.precision' must be one of {', '.join(PRECISIONS)}, "
                          f"got {cfg.discriminator.precision!r}")
    if cfg.train.keep_best and best_direction(cfg.train.keep_best) is None:
        raise ConfigError(f"'train.keep_best' must be an evaluation metric (eval/oracle_nll, eval/nll_test, "
                          f"eval/bleuN, eval/self_bleuN), got {cfg.train.keep_best!r}")
    if not 0 <= cfg.data.start_token < cfg.data.vocab_size:
        raise ConfigError(f"'data.start_token' must be in [0, data.vocab_size), got {cfg.data.start_token}")
    fs, nf = cfg.discriminator.filter_sizes, cfg.discriminator.num_filters
    if bool(fs) != bool(nf) or (fs and len(fs) != len(nf)):
        raise ConfigError("'discriminator.filter_sizes' and 'discriminator.num_filters' must both be "
                          "empty (the paper's rule) or lists of the same length")
    if fs and (min(fs) < 1 or max(fs) > cfg.data.seq_len or min(nf) < 1):
        raise ConfigError(f"'discriminator.filter_sizes' must lie in 1..data.seq_len "
                          f"({cfg.data.seq_len}) with num_filters >= 1, got {fs} / {nf}")


def best_direction(metric: str) -> int | None:
    """+1 where higher is better (BLEU), -1 where lower is (NLLs, Self-BLEU); None: not a metric."""
    import re

    if re.fullmatch(r"eval/(oracle_nll|nll_test|self_bleu[2-5])", metric):
        return -1
    return 1 if re.fullmatch(r"eval/bleu[2-5]", metric) else None


def _validate_leakgan(cfg: Config) -> None:
    """LeakGAN's settings fit together."""
    lc, tc, method = cfg.leakgan, cfg.train, cfg.train.method
    if method != "leakgan":  # its leakgan.* keys: _check_reads
        if cfg.generator.kind == "leakgan":
            raise ConfigError(f"'generator.kind: leakgan' is trained by train.method leakgan, not {method!r}")
        return
    T, c = cfg.data.seq_len, lc.step_size
    fixes = [
        (cfg.generator.kind != "leakgan", "'generator.kind' must be leakgan with train.method leakgan"),
        (cfg.discriminator.kind != "cnn", "'discriminator.kind' must be cnn with train.method leakgan "
                                          "(its pooled features are what leaks)"),
        (c >= T or (T % c and not cfg.data.corpus),
         f"'leakgan.step_size' ({c}) must divide data.seq_len ({T}) and be smaller"),
        (cfg.rollout.stride != c, f"'rollout.stride' ({cfg.rollout.stride}) must equal leakgan.step_size "
                                  f"({c}): LeakGAN rolls out at every step_size-th prefix"),
        (cfg.rollout.reward not in ("discriminator", "constant"),
         "'rollout.reward' must be discriminator (or constant, the no-signal control) with train.method leakgan"),
        (cfg.rollout.update_rate != 0, "'rollout.update_rate' must be 0 with train.method leakgan: it rolls out "
                                       "with G itself, as the reference (no delayed policy)"),
        (tc.pretrain_workers != 0, "'train.pretrain_workers' must be 0 with train.method leakgan (its MLE "
                                   "reads D's features: it runs in the learner)"),
        (tc.pretrain_g_epochs % lc.pretrain_rounds or tc.pretrain_d_rounds % lc.pretrain_rounds,
         f"'leakgan.pretrain_rounds' ({lc.pretrain_rounds}) must divide train.pretrain_g_epochs "
         f"({tc.pretrain_g_epochs}) and train.pretrain_d_rounds ({tc.pretrain_d_rounds})"),
    ]
    conflicts = [message for bad, message in fixes if bad]
    if conflicts:
        raise ConfigError("; ".join(conflicts) if len(conflicts) == 1 else
                          f"{len(conflicts)} settings cannot work with train.method leakgan: " + "; ".join(conflicts))


def _validate_maskgan(cfg: Config) -> None:
    """MaskGAN's settings: a known mask mode, and no other model kind asked for."""
    if cfg.rollout.estimator not in ESTIMATORS:
        raise ConfigError(f"'rollout.estimator' must be one of {', '.join(ESTIMATORS)}, got {cfg.rollout.estimator!r}")
    if cfg.rollout.estimator == "critic" and (cfg.train.method != "seqgan" or cfg.rollout.reward != "discriminator"):
        raise ConfigError(f"'rollout.estimator: critic' replaces Eq. 4's per-token Monte Carlo rewards of "
                          f"train.method seqgan scored by D (rollout.reward discriminator); train.method "
                          f"{cfg.train.method} with rollout.reward {cfg.rollout.reward} has no such reward: "
                          f"leave rollout.estimator at mc")
    if cfg.maskgan.mask_mode not in MASK_MODES:
        raise ConfigError(f"'maskgan.mask_mode' must be one of {', '.join(MASK_MODES)}, "
                          f"got {cfg.maskgan.mask_mode!r}")
    if cfg.train.method not in MASKGAN_METHODS:
        return
    for key, default in (("generator.kind", "lstm"), ("discriminator.kind", "cnn")):
        if _get(cfg, key) != default:
            raise ConfigError(f"'{key}' is not read by train.method {cfg.train.method}, whose G and D are its seq2seq "
                              f"models (maskgan.hidden_dim, maskgan.num_layers): remove it")
    if cfg.train.pretrain_workers:
        raise ConfigError(f"'train.pretrain_workers' must be 0 with train.method {cfg.train.method} (its MaskMLE draws "
                          "masks in the learner)")


def unread_keys(cfg: Config, keys: set[str] | None = None) -> dict[str, str]:
    """The keys set (not at their default) that this run would not read, each with why: a key of
    METHOD_SECTIONS or METHOD_KEYS that train.method's `reads` does not name (an algorithm of your
    own that has no `reads`: not checked), and a key of MODEL_READS that the model or reward in
    force does not read. `keys`: look at these keys instead, set or not (a sweep's searched keys)."""
    from .algorithms import ALGORITHMS, load_algorithm

    reads = getattr(load_algorithm(cfg.train.method), "reads", None)
    defaults, unread = Config(), {}
    changed = [key for key, _ in _fields() if (_get(cfg, key) != _get(defaults, key) if keys is None else key in keys)]
    for key in changed:
        if reads is not None and _method_key(key) and not _reads(reads, key):
            users = [name for name, cls in ALGORITHMS.items()
                     if getattr(cls, "reads", None) is not None and _reads(cls.reads, key)]
            unread[key] = f"'{key}' is read only by train.method {' or '.join(users)}, but train.method is " \
                          f"{cfg.train.method}"
    for selector, readers in MODEL_READS.items():
        value, keys = _get(cfg, selector), {k for ks in readers.values() for k in ks}
        for key in changed:
            if key in keys and value in readers and key not in readers[value]:
                users = [v for v, ks in readers.items() if key in ks]
                unread[key] = f"'{key}' is read only by {selector} {' or '.join(users)}, but {selector} is {value}"
    return unread


def unread_error(unread: dict[str, str]) -> ConfigError:
    """One error naming every key of `unread_keys`."""
    it = "it" if len(unread) == 1 else "them"
    return ConfigError("; ".join(unread.values()) + f": remove {it}, or set what reads {it}")


def _method_key(key: str) -> bool:
    return key.partition(".")[0] in METHOD_SECTIONS or key in METHOD_KEYS


def _reads(reads: tuple[str, ...], key: str) -> bool:
    return any(key == r or key.startswith(r + ".") for r in reads)


def _fields() -> list[tuple[str, dataclasses.Field]]:
    """("section.key", its dataclass field) for every config key."""
    return [(f"{s.name}.{f.name}", f) for s in dataclasses.fields(Config)
            for f in dataclasses.fields(s.default_factory)]


def _get(cfg: Config, key: str) -> Any:
    section, _, name = key.partition(".")
    return getattr(getattr(cfg, section), name)


BOUNDS = (("min", ">="), ("above", ">"), ("below", "<"), ("max", "<="))  # a setting's bounds, in messages


def _check_bounds(key: str, value: Any, meta: Any) -> None:
    """Raise ConfigError naming `key` if `value` breaks a bound of its field's `setting`."""
    holds = {"min": lambda b: value >= b, "above": lambda b: value > b,
             "below": lambda b: value < b, "max": lambda b: value <= b}
    if all(holds[k](meta[k]) for k, _ in BOUNDS if k in meta):
        return
    bounds = " and ".join(f"{op} {meta[k]:g}" for k, op in BOUNDS if k in meta)
    what = f" ({meta['what']})" if meta.get("what") else ""
    why = f": {meta['why']}" if meta.get("why") else ""
    raise ConfigError(f"'{key}'{what} must be {bounds}, got {value}{why}")


def key_roles() -> dict[str, str]:
    """Every config key's role (SHAPE, PRETRAINING, ADVERSARIAL, LENGTH or OUTPUT)."""
    return {key: f.metadata.get("role") or SECTION_ROLES[key.partition(".")[0]] for key, f in _fields()}


def keys_with(*roles: str) -> tuple[str, ...]:
    """The config keys whose role is one of `roles`, in the order of the dataclasses."""
    return tuple(key for key, role in key_roles().items() if role in roles)


def import_named(key: str, name: str, *, what: str) -> Any:
    """The object `name` ("module:Attr") names, for config key `key` (train.method,
    rollout.reward): imported, or a ConfigError that names the key, the module and the fix.
    `what` says what the key takes besides an import path ("one of seqgan, mle, ...")."""
    module, _, attr = name.partition(":")
    if not attr:
        raise ConfigError(f"'{key}' must be {what} or module:Class (your own), got {name!r}")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise ConfigError(f"{key}={name}: cannot import {module} ({exc}); is it on PYTHONPATH "
                          f"(and on every node of a cluster)?") from None
    except AttributeError:
        raise ConfigError(f"{key}={name}: module {module} has no {attr}") from None


def check_folder(folder: str | Path, *, key: str, value: str) -> None:
    """Refuse, before any work, a folder that cannot be made or written into: a ConfigError naming
    `key` (whose `value` leads to `folder`) and the OS's reason. The folders made to find out are
    removed again, so a run that fails later leaves nothing behind."""
    import errno
    import os

    fix = f"set {key} to a folder you can write"
    folder, made = Path(folder), []
    try:
        for path in [*reversed(folder.parents), folder]:
            if path.is_dir():
                continue
            if path.exists():
                raise ConfigError(f"{key}={value}: {path} is a file, not a folder; {fix}")
            path.mkdir()  # /proc/x: ENOENT; a read-only disk: EROFS; someone else's folder: EACCES
            made.append(path)
    except OSError as exc:
        raise ConfigError(f"{key}={value}: cannot create {exc.filename or path}: {exc.strerror}; {fix}") from None
    else:
        if not os.access(folder, os.W_OK | os.X_OK):  # it was there already, and is not ours
            raise ConfigError(f"{key}={value}: cannot write in {folder}: {os.strerror(errno.EACCES)}; {fix}")
    finally:
        for path in reversed(made):
            try:
                path.rmdir()
            except OSError:  # another process put something in it meanwhile: theirs now
                pass


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def reference_markdown() -> str:
    """The config reference (docs/configuration.md), from the dataclasses and their docstrings."""
    import ast
    import inspect

    sections = {f.name: type(getattr(Config(), f.name)) for f in dataclasses.fields(Config)}
    tree = ast.parse(inspect.getsource(__import__(__name__, fromlist=["_"])))
    docs: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            body = node.body
            for a, b in zip(body, body[1:] + [None]):
                if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
                    docs.setdefault(node.name, {})[a.target.id] = " ".join(str(b.value.value).split())
    lines = ["# Configuration reference", "",
             "Generated by `python -m seqgan_ray.config` from `seqgan_ray/config.py`; a test keeps it",
             "in step. Precedence: these defaults, then `--config FILE`, then `key=value` overrides.", ""]
    for name, cls in sections.items():
        lines += [f"## `{name}`", "", " ".join((cls.__doc__ or "").split()), "",
                  "| key | default | meaning |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            default = (f.default if f.default is not dataclasses.MISSING
                       else f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            lines.append(f"| `{name}.{f.name}` | `{default!r}` | {docs.get(cls.__name__, {}).get(f.name, '')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown())
