"""Config merging and validation, the shipped configs, token-file errors."""

from pathlib import Path

import pytest
import torch

from seqgan_ray.config import Config, ConfigError, load_config, validate
from seqgan_ray.tasks.token_file import DataError, read_token_file
from tests.helpers import ROOT


def test_defaults_are_valid():
    validate(Config())
    cfg = load_config()
    assert cfg == Config()
    assert cfg.rollout.num_rollouts == 16 and cfg.rollout.update_rate == 0.8


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rollout:\n  num_rollouts: 8\n  update_rate: 0.5\n"
                    "generator:\n  lr: 1\n"
                    "discriminator:\n  filter_sizes: [1, 2]\n  num_filters: [3, 4]\n")
    cfg = load_config(path, ["rollout.num_rollouts=4", "run.name=abc", "data.seq_len=12"])
    assert cfg.rollout.num_rollouts == 4          # the override wins over the file
    assert cfg.rollout.update_rate == 0.5          # the file wins over the default
    assert cfg.generator.lr == 1.0 and isinstance(cfg.generator.lr, float)
    assert cfg.discriminator.filter_sizes == [1, 2] and cfg.discriminator.num_filters == [3, 4]
    assert cfg.run.name == "abc" and cfg.data.seq_len == 12
    assert cfg.generator.adv_lr == Config().generator.adv_lr  # untouched keys keep defaults


def test_unknown_key_suggests_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"did you mean 'rollout\.num_rollouts'"):
        load_config(overrides=["rollout.num_rolouts=3"])
    path = tmp_path / "typo.yaml"
    path.write_text("generator:\n  hiden_dim: 8\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "generator.hidden_dim" in str(err.value)


@pytest.mark.parametrize("override", ["rollout.num_rollouts=abc", "rollout.num_rollouts=true",
                                      "rollout.num_rollouts=2.5", "generator.lr=fast"])
def test_wrong_type_names_the_key(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        load_config(overrides=[override])


def test_exponent_float_without_dot_is_accepted():
    assert load_config(overrides=["discriminator.lr=1e-4"]).discriminator.lr == 1e-4


@pytest.mark.parametrize("override", ["rollout.num_rollouts=0", "generator.lr=-0.01",
                                      "discriminator.lr=0", "rollout.update_rate=1.0",
                                      "rollout.update_rate=-0.1", "data.seq_len=0", "data.seq_len=1",
                                      "train.adv_iterations=-1", "rollout.stride=0", "rollout.bleu_n=1",
                                      "train.sampling_step=1.5", "discriminator.dropout=1.0"])
def test_impossible_values_rejected_naming_the_key(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        load_config(overrides=[override])


def test_every_key_has_a_role_and_the_derived_key_lists_are_what_the_tools_need():
    from seqgan_ray.checkpoint import SHAPE_KEYS
    from seqgan_ray.config import ADVERSARIAL, LENGTH, OUTPUT, PRETRAINING, SHAPE, key_roles
    from seqgan_ray.distributed.sweep import PRETRAINING_KEYS
    from seqgan_ray.experiments.reproduce import TRIVIA

    roles = key_roles()
    assert set(roles.values()) <= {SHAPE, PRETRAINING, ADVERSARIAL, LENGTH, OUTPUT}
    assert SHAPE_KEYS == ("data.vocab_size", "data.seq_len", "generator.kind", "generator.emb_dim",
                          "generator.hidden_dim", "generator.latent_dim", "generator.mem_slots", "generator.head_size", "generator.num_heads",
                          "discriminator.kind", "discriminator.num_rep", "discriminator.emb_dim",
                          "discriminator.filter_sizes", "discriminator.num_filters", "leakgan.goal_size",
                          "maskgan.hidden_dim", "maskgan.num_layers")
    assert set(SHAPE_KEYS) <= set(PRETRAINING_KEYS) and "generator.lr" in PRETRAINING_KEYS
    assert not any(k.startswith(("rollout.", "relaxed.", "textgan.")) for k in PRETRAINING_KEYS) and "generator.adv_lr" not in PRETRAINING_KEYS
    assert TRIVIA == {"run.progress", "run.out_dir", "run.name", "run.num_samples_saved", "train.adv_iterations",
                      "train.checkpoint_every", "train.checkpoint_every_s", "train.keep_checkpoints",
                      "train.keep_best", "run.keep_checkpoints_at_end"}


def test_filter_sizes_must_fit_the_sequence():
    with pytest.raises(ConfigError, match="filter_sizes"):
        load_config(overrides=["data.seq_len=5", "discriminator.filter_sizes=[2, 6]",
                               "discriminator.num_filters=[3, 3]"])
    with pytest.raises(ConfigError, match="num_filters"):
        load_config(overrides=["discriminator.filter_sizes=[2, 3]", "discriminator.num_filters=[3]"])


def test_shipped_configs_load():
    """Every configs/*.yaml loads: a sweep file (with a tune: section) as a sweep, a reproduce
    file as a plan, others as configs."""
    import yaml

    from seqgan_ray.distributed.sweep import load_sweep
    from seqgan_ray.experiments.reproduce import load_plan

    paths = sorted((ROOT / "configs").glob("*.yaml"))
    assert paths, f"no configs/*.yaml under {ROOT}"
    for path in paths:
        sections = yaml.safe_load(path.read_text()) or {}
        if "tune" in sections:
            assert isinstance(load_sweep(path)[0], Config), path
        elif "reproduce" in sections:
            assert load_plan(path).run_configs, path
        else:
            assert isinstance(load_config(path), Config), path


def _write(tmp_path, content: bytes) -> Path:
    path = tmp_path / "seqs.txt"
    path.write_bytes(content)
    return path


def test_read_token_file_valid(tmp_path):
    path = _write(tmp_path, b"1 2 3\n\n4 5 0\n")  # a blank line is skipped
    assert torch.equal(read_token_file(path, vocab_size=6, seq_len=3), torch.tensor([[1, 2, 3], [4, 5, 0]]))


def test_read_token_file_missing(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(DataError, match="not found") as err:
        read_token_file(path, vocab_size=6, seq_len=3)
    assert str(path) in str(err.value)


def test_read_token_file_empty(tmp_path):
    path = _write(tmp_path, b"\n\n")
    with pytest.raises(DataError, match="no sequences") as err:
        read_token_file(path, vocab_size=6, seq_len=3)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("content, where, what", [
    (b"1 2 3\n1 2\n", ":2:", "seq_len"),              # wrong length
    (b"1 2 3\n1 2 3\n1 2 6\n", ":3:", "token id 6"),  # id out of range
    (b"1 -1 3\n", ":1:", "token id -1"),               # negative id
    (b"1 2 3\n1 x 3\n", ":2:", "integer"),             # not a number
    (b"\xff\xfe 1 2\n", ":1:", "UTF-8"),               # not UTF-8
])
def test_read_token_file_bad_line(tmp_path, content, where, what):
    path = _write(tmp_path, content)
    with pytest.raises(DataError) as err:
        read_token_file(path, vocab_size=6, seq_len=3)
    assert f"{path}{where}" in str(err.value) and what in str(err.value)
