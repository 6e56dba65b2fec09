"""What a newcomer tries first, from the README alone: a method started by its name alone,
overrides anywhere on the line, a resume that cannot change the method, keys a run would not
read, bad data that leaves no folder behind, and the small things around them."""

from __future__ import annotations

import pytest
import yaml

from seqgan_ray.algorithms import describe
from seqgan_ray.cli import main
from seqgan_ray.config import ConfigError, load_config, read_yaml, unread_keys
from seqgan_ray.distributed.sweep import load_sweep
from tests.helpers import TINY_TEXT, text_corpus, tiny_config


@pytest.mark.parametrize("method, want", [
    ("leakgan", {"generator.kind": "leakgan", "rollout.stride": 4, "rollout.update_rate": 0.0,
                 "discriminator.l2_reg": 0.0, "leakgan.pretrain_rounds": 1}),  # 25 MLE epochs, 3 D rounds
    ("relgan", {"generator.kind": "relational_memory", "discriminator.kind": "relgan",
                "train.pretrain_d_rounds": 0, "generator.adv_lr": 1e-4, "discriminator.l2_reg": 0.0}),
    ("textgan", {"generator.kind": "latent_lstm", "relaxed.d_steps": 1, "discriminator.l2_reg": 0.0,
                 "textgan.grad_rescale": 5.0}),
    ("gsgan", {"generator.kind": "lstm", "discriminator.kind": "cnn", "generator.adv_lr": 1e-4}),
    ("seqgan", {"generator.kind": "lstm", "rollout.stride": 1, "rollout.update_rate": 0.8}),
])
def test_a_method_starts_by_its_name_with_its_own_models_and_settings(method, want):
    cfg = load_config(None, [f"train.method={method}"])
    got = {key: getattr(getattr(cfg, key.split(".")[0]), key.split(".")[1]) for key in want}
    assert got == want


def test_a_method_default_gives_way_to_a_key_the_user_set():
    cfg = load_config(None, ["train.method=leakgan", "leakgan.step_size=5", "train.pretrain_g_epochs=20",
                             "train.pretrain_d_rounds=10", "rollout.num_rollouts=8"])
    assert (cfg.rollout.stride, cfg.leakgan.pretrain_rounds, cfg.rollout.num_rollouts) == (5, 10, 8)
    relgan_on_lstm = load_config(None, ["train.method=relgan", "generator.kind=lstm", "discriminator.kind=cnn",
                                        "train.pretrain_d_rounds=3"])
    assert (relgan_on_lstm.generator.kind, relgan_on_lstm.discriminator.kind) == ("lstm", "cnn")
    assert "generator lstm" in describe(relgan_on_lstm)


def test_a_method_default_also_fills_a_config_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("train:\n  method: leakgan\n  pretrain_g_epochs: 8\n  pretrain_d_rounds: 4\n")
    cfg = load_config(path)
    assert (cfg.generator.kind, cfg.leakgan.pretrain_rounds) == ("leakgan", 4)


def test_every_key_set_that_cannot_work_is_named_in_one_message():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.method=leakgan", "generator.kind=lstm", "rollout.stride=2",
                           "rollout.update_rate=0.5"])
    message = str(err.value)
    assert message.startswith("3 settings cannot work with train.method leakgan")
    for key in ("'generator.kind'", "'rollout.stride'", "'rollout.update_rate'"):
        assert key in message


def test_the_first_lines_name_the_models_and_the_method_settings_in_force():
    line = describe(load_config(None, ["train.method=leakgan", "rollout.num_rollouts=8"]))
    assert line.startswith("method leakgan: generator leakgan")
    assert "rollout.stride=4" in line and "rollout.num_rollouts=8" in line and "discriminator cnn" in line


@pytest.mark.parametrize("overrides, key", [
    (["train.method=relgan", "rollout.num_rollouts=8"], "rollout.num_rollouts"),
    (["train.sampling_step=0.1"], "train.sampling_step"),
    (["generator.mem_slots=2"], "generator.mem_slots"),
    (["discriminator.num_rep=8"], "discriminator.num_rep"),
    (["rollout.bleu_n=3"], "rollout.bleu_n"),
])
def test_a_key_the_run_does_not_read_is_named(overrides, key):
    assert list(unread_keys(load_config(None, overrides))) == [key]


def test_keys_the_run_reads_are_not_named():
    for overrides in (["train.method=scheduled_sampling", "train.sampling_step=0.1"],
                      ["rollout.reward=bleu", "rollout.bleu_n=3"], ["rollout.num_rollouts=8"],
                      ["train.method=relgan", "generator.mem_slots=2", "discriminator.num_rep=8",
                       "discriminator.emb_dim=64"]):
        assert unread_keys(load_config(None, overrides)) == {}, overrides


def test_the_train_command_warns_of_a_key_it_will_not_read(tmp_path, capsys):
    train, test = text_corpus(tmp_path / "text")
    assert main(["--no-ray", f"data.corpus={train}", f"data.test_text={test}", f"run.out_dir={tmp_path}",
                 "run.name=r", *TINY_TEXT, "train.adv_iterations=0", "train.sampling_step=0.1"]) == 0
    assert "warning: 'train.sampling_step' is read only by train.method scheduled_sampling" in capsys.readouterr().err


def test_a_sweep_over_a_key_the_method_does_not_read_is_refused(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"train": {"method": "gsgan"}, "tune": {
        "metric": "eval/oracle_nll", "search_space": {"rollout.num_rollouts": {"choice": [4, 8]}}}}))
    with pytest.raises(ConfigError, match="tune.search_space: 'rollout.num_rollouts' is read only by"):
        load_sweep(path)


def test_overrides_go_anywhere_on_the_line(tmp_path, capsys):
    assert main(["generator.lr=1e-3", "--no-ray", "train.pretrain_g_epochs=0", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["generator"]["lr"] == 1e-3 and printed["train"]["pretrain_g_epochs"] == 0


def test_print_config_shows_the_method_defaults_and_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train.method=leakgan", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["rollout"]["stride"] == 4 and printed["generator"]["kind"] == "leakgan"
    assert not (tmp_path / "runs").exists()


def test_resume_refuses_another_method_and_from_starts_a_new_run_with_it(tmp_path, capsys):
    out = f"run.out_dir={tmp_path}"
    assert main(["--config", str(tiny_config(tmp_path)), "--no-ray", out, "run.name=mle", "train.method=mle"]) == 0
    run = tmp_path / "mle"
    config_before = (run / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["--resume", str(run), "train.method=seqgan", "--no-ray"]) == 2
    err = capsys.readouterr().err
    assert "was trained with train.method mle" in err and "--from" in err
    assert (run / "config.yaml").read_text() == config_before
    pretrained = run / "checkpoints" / "pretrain_d_000001.pt"
    assert main(["--config", str(tiny_config(tmp_path)), "--no-ray", out, "run.name=seqgan", "--from",
                 str(pretrained), "train.method=seqgan"]) == 0
    records = [line for line in (tmp_path / "seqgan" / "metrics.jsonl").read_text().splitlines()]
    assert any('"phase": "adversarial"' in r and "gen/pg_loss" in r for r in records)
    assert not any('"phase": "pretrain_g"' in r for r in records)  # it started after the pretraining


def test_bad_data_leaves_no_folder_that_would_block_the_name(tmp_path, capsys):
    one = tmp_path / "one.txt"
    one.write_text("a b c\n")
    test = tmp_path / "test.txt"
    test.write_text("a b\n")
    argv = ["--no-ray", f"data.corpus={one}", f"data.test_text={test}", f"run.out_dir={tmp_path / 'runs'}",
            "run.name=bad"]
    assert main(argv) == 2
    assert "fewer than one batch" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert main(argv) == 2  # the same error again, not "already exists"
    assert "already exists" not in capsys.readouterr().err


def test_prepare_warns_when_there_is_no_test_split(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("a b c\nd e f\n")
    assert main(["prepare", "--input", str(text), "--out", str(tmp_path / "c"), "--quiet"]) == 0
    assert "warning: no test split" in capsys.readouterr().err


def test_a_method_name_in_the_wrong_case_gets_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean leakgan"):
        load_config(None, ["train.method=LeakGAN"])


def test_a_negative_option_value_is_named_by_its_option(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path), "--temperatures", "-0.5,1"]) == 2
    assert capsys.readouterr().err.startswith("error: --temperatures '-0.5,1'")
    assert main(["sample", "--run", str(tmp_path), "--temperature", "-1"]) == 2
    assert capsys.readouterr().err.startswith("error: --temperature -1")


def test_a_duplicate_yaml_key_is_refused_with_its_line(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("train:\n  adv_iterations: 3\n  adv_iterations: 5\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: line 3: 'adv_iterations' appears twice"):
        read_yaml(path)


def test_sample_is_the_same_for_a_seed_whatever_num(tmp_path, capsys):
    assert main(["--config", str(tiny_config(tmp_path)), "--no-ray", f"run.out_dir={tmp_path}", "run.name=r",
                 "train.adv_iterations=0"]) == 0
    capsys.readouterr()
    outs = []
    for num in (3, 10, 70):
        assert main(["sample", "--run", str(tmp_path / "r"), "--num", str(num), "--seed", "5"]) == 0
        outs.append(capsys.readouterr().out.splitlines())
    assert outs[0] == outs[1][:3] == outs[2][:3] and outs[1] == outs[2][:10] and len(outs[2]) == 70


def test_sample_points_from_a_trial_folder_to_its_run(tmp_path, capsys):
    (tmp_path / "trial" / "run").mkdir(parents=True)
    (tmp_path / "trial" / "run" / "config.yaml").write_text("{}\n")
    assert main(["sample", "--run", str(tmp_path / "trial")]) == 2
    assert f"its run is {tmp_path / 'trial' / 'run'}" in capsys.readouterr().err


def test_the_mle_summary_does_not_say_adversarial(tmp_path, capsys):
    assert main(["--config", str(tiny_config(tmp_path)), "--no-ray", f"run.out_dir={tmp_path}", "run.name=r",
                 "train.method=mle"]) == 0
    out = capsys.readouterr().out
    assert "after the MLE epochs" in out and "adversarial" not in out


def test_a_sweep_metric_the_task_never_reports_is_refused_before_any_work(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"tune": {"metric": "eval/bleu4",
                                             "search_space": {"generator.adv_lr": {"choice": [1e-3, 1e-2]}}}}))
    with pytest.raises(ConfigError, match="'eval/bleu4' is never reported by a trial of this sweep "
                                          r"\(the synthetic task, train.method seqgan\)"):
        load_sweep(path)
    path.write_text(yaml.safe_dump({"train": {"method": "mle"}, "tune": {
        "metric": "gen/pg_loss", "search_space": {"generator.lr": {"choice": [1e-3, 1e-2]}}}}))
    with pytest.raises(ConfigError, match="choose one of eval/oracle_nll, eval/nll_test, gen/mle_nll"):
        load_sweep(path)


def test_the_sweep_table_shows_four_decimals_of_an_nll():
    from seqgan_ray.distributed.sweep import _fmt

    assert (_fmt(10.11234), _fmt(1e-4), _fmt(0.5), _fmt(16)) == ("10.1123", "0.0001", "0.5000", "16")


def test_keep_best_saves_the_best_generator_and_the_end_keeps_only_it(tmp_path, capsys):
    import json

    assert main(["--config", str(tiny_config(tmp_path)), "--no-ray", f"run.out_dir={tmp_path}", "run.name=r",
                 "train.keep_best=eval/oracle_nll", "run.keep_checkpoints_at_end=false"]) == 0
    run = tmp_path / "r"
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    values = [(r["phase"], r["step"], r["eval/oracle_nll"]) for r in evals if "eval/oracle_nll" in r]
    best = json.loads((run / "best.json").read_text())
    assert best["value"] == min(v for _, _, v in values)
    assert (best["phase"], best["step"]) == next((p, s) for p, s, v in values if v == best["value"])
    assert json.loads((run / "summary.json").read_text())["best"] == best
    assert (run / "best_generator.pt").is_file() and (run / "generator.pt").is_file()
    assert not (run / "checkpoints").exists()
    capsys.readouterr()
    assert main(["sample", "--run", str(run), "--checkpoint", str(run / "best_generator.pt"), "--num", "2"]) == 0


def test_keep_best_must_name_a_metric():
    with pytest.raises(ConfigError, match="'train.keep_best' must be an evaluation metric"):
        load_config(None, ["train.keep_best=eval/bleu9"])


def test_report_only_with_no_runs_changes_nothing(tmp_path, capsys):
    report, figure = tmp_path / "synthetic.md", tmp_path / "synthetic_figure2.png"
    report.write_text("# a finished table\n")
    figure.write_bytes(b"a real figure")
    assert main(["reproduce", "--config", "configs/reproduce_synthetic.yaml", "--report-only",
                 f"reproduce.out_dir={tmp_path / 'runs'}", f"reproduce.report={report}"]) == 2
    assert "nothing to report" in capsys.readouterr().err
    assert report.read_text() == "# a finished table\n" and figure.read_bytes() == b"a real figure"


def _tensorboard_tags(folder) -> set[str]:
    """The tags of every summary in a run's tensorboard/ event files (TFRecord: length, CRC, event, CRC)."""
    import struct

    from tensorboardX.proto import event_pb2

    tags = set()
    for path in folder.glob("events.out.tfevents.*"):
        data, i = path.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            tags |= {v.tag for v in event.summary.value}
            i += 12 + n + 4
    return tags


def test_tensorboard_gets_the_generator_samples_as_text(tmp_path, capsys):
    assert main(["--config", str(tiny_config(tmp_path)), "--no-ray", f"run.out_dir={tmp_path}", "run.name=r",
                 "train.adv_iterations=1"]) == 0
    tags = _tensorboard_tags(tmp_path / "r" / "tensorboard")
    assert "samples/text_summary" in tags and "eval/oracle_nll" in tags


def test_prepare_caps_the_vocabulary_and_can_split_punctuation(tmp_path, capsys):
    from seqgan_ray.tasks.corpus import Vocab

    text = tmp_path / "t.txt"
    text.write_text("it's fine. it is fine!\nthe cat, the dog.\nthe end\n")
    held = tmp_path / "h.txt"
    held.write_text("the dog.\n")
    assert main(["prepare", "--input", str(text), "--out", str(tmp_path / "c"), "--test", str(held),
                 "--max-vocab", "3", "--split-punctuation", "--quiet"]) == 0
    assert "the 3 most frequent" in capsys.readouterr().out
    vocab = Vocab.load(tmp_path / "c")
    assert vocab.words[4:] == ["the", ".", "fine"] and vocab.split_punctuation
    assert vocab.encode("the cat.") == [4, 3, 5]  # cat is beyond the cap: <unk>
    assert main(["prepare", "--input", str(text), "--out", str(tmp_path / "w"), "--test", str(held),
                 "--quiet"]) == 0
    assert "fine." in Vocab.load(tmp_path / "w").words  # whitespace only by default


def test_a_sweep_hides_tunes_own_resume_hint_and_keeps_its_other_warnings(caplog):
    import logging

    from seqgan_ray.distributed.sweep import _without_ray_resume_hint

    logger = logging.getLogger("ray.tune.tune")
    with caplog.at_level(logging.WARNING, logger="ray.tune.tune"), _without_ray_resume_hint():
        logger.warning("Experiment has been interrupted, but the most recent state was saved.\n"
                       "Resume experiment with: Tuner.restore(path=\"x\", trainable=...)")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


@pytest.mark.parametrize("tune, message", [
    ({"search_alg": "bayes"}, "tune.search_alg must be one of random, optuna"),
    ({"search_alg": "optuna", "search_space": {"generator.adv_lr": {"grid": [1e-3, 1e-2]}}},
     "a grid is walked by tune.search_alg random"),
    ({"search_alg": "optuna", "scheduler": "pbt"}, "takes no search algorithm"),
])
def test_a_search_algorithm_that_cannot_work_is_refused(tmp_path, tune, message):
    path = tmp_path / "sweep.yaml"
    sweep = {"metric": "eval/oracle_nll", "search_space": {"generator.adv_lr": {"loguniform": [1e-3, 1e-2]}}, **tune}
    path.write_text(yaml.safe_dump({"tune": sweep}))
    with pytest.raises(ConfigError, match=message):
        load_sweep(path)


def test_a_reproduce_run_on_the_shared_pretraining_keeps_its_models_and_takes_the_method_rest(tmp_path):
    from seqgan_ray.experiments.reproduce import load_plan

    path = tmp_path / "r.yaml"
    runs = {"mle": {"train.method": "mle"}, "relgan_lstm": {"train.method": "relgan"},
            "relgan": {"train.method": "relgan"}}
    path.write_text(yaml.safe_dump({"reproduce": {"runs": runs, "standalone": ["relgan"], "seeds": [0],
                                                  "out_dir": str(tmp_path / "runs"), "report": str(tmp_path / "r.md")}}))
    plan = load_plan(path)
    shared, own = plan.run_configs["relgan_lstm"], plan.run_configs["relgan"]
    assert (shared.generator.kind, shared.discriminator.kind, shared.train.pretrain_d_rounds) == ("lstm", "cnn", 3)
    assert shared.generator.adv_lr == own.generator.adv_lr == 1e-4  # the method's adversarial rate all the same
    assert (own.generator.kind, own.discriminator.kind, own.train.pretrain_d_rounds) == ("relational_memory", "relgan", 0)


def test_an_algorithm_of_your_own_named_by_module_brings_its_defaults_too():
    cfg = load_config(None, ["train.method=tests.unit.test_newcomer:WithDefaults"])
    assert cfg.generator.adv_lr == 0.003 and "generator.adv_lr=0.003" in describe(cfg)
    assert load_config(None, ["train.method=tests.unit.test_newcomer:WithDefaults",
                              "generator.adv_lr=0.02"]).generator.adv_lr == 0.02


class WithDefaults:
    """A plug-in algorithm (never trained here) that brings one setting of its own."""

    label = "adversarial (with defaults)"

    @staticmethod
    def defaults(cfg):
        return {"generator.adv_lr": 0.003}
