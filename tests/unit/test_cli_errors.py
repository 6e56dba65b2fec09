"""What a new user runs into: each mistake is one `error: ...` line on stderr, exit code 2, no
traceback, and nothing written. Every command here fails before Ray starts or anything trains;
the guards below make a command that wrongly gets that far fail at once instead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seqgan_ray.cli import COMMANDS, build_parser, main
from seqgan_ray.config import ConfigError, check_folder, load_config
from tests.helpers import ROOT

LATIN1 = "train:\n  adv_iterations: 3   # caf\u00e9\n".encode("latin1")  # é is byte 0xe9 at offset 34


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp_path as the working directory (so the default runs/ would land there), with training,
    Ray and the reproduce plan replaced by guards that fail loudly if they are ever reached."""
    import seqgan_ray.distributed.cluster as cluster
    import seqgan_ray.experiments.reproduce as reproduce
    import seqgan_ray.tasks.text as tasks

    def reached(*args, **kwargs):
        raise AssertionError("the command got past its checks")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tasks, "load_task", reached)
    monkeypatch.setattr(cluster, "connect", reached)
    monkeypatch.setattr(reproduce, "run_plan", reached)
    monkeypatch.setattr(reproduce, "start_in_background", reached)
    return tmp_path


def files(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def fails_with(argv: list[str], capsys, folder: Path, *needles: str) -> str:
    """Run the CLI in-process; check exit 2, one `error:` line holding every needle, nothing new
    under `folder`; return the line."""
    before = files(folder)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    assert files(folder) == before
    return err


def test_config_file_not_utf8(workdir, capsys):
    bad = workdir / "bad.yaml"
    bad.write_bytes(LATIN1)
    err = fails_with(["--config", str(bad), "--no-ray"], capsys, workdir, str(bad), "not UTF-8",
                     "byte 0xe9 at offset 34, line 2", "save it as UTF-8")
    assert not (workdir / "runs").exists()
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)
    assert err.rstrip().endswith("save it as UTF-8")


@pytest.mark.parametrize("command", ["tune", "reproduce"])
def test_sweep_and_reproduce_files_not_utf8(workdir, capsys, command):
    bad = workdir / "bad.yaml"
    bad.write_bytes(LATIN1 + b"tune:\n  name: x\nreproduce:\n  runs: {mle: {}}\n")
    fails_with([command, "--config", str(bad)], capsys, workdir, str(bad), "not UTF-8")


def test_resumed_run_config_not_utf8(workdir, capsys):
    run = workdir / "runs" / "old"
    run.mkdir(parents=True)
    (run / "config.yaml").write_bytes(LATIN1)
    fails_with(["--resume", str(run), "--no-ray"], capsys, workdir, str(run / "config.yaml"), "not UTF-8")


def test_cluster_file_not_utf8(workdir, capsys):
    bad = workdir / "cluster.yaml"
    bad.write_bytes(b"cluster_name: caf\xe9\n")
    fails_with(["--cluster", str(bad)], capsys, workdir, str(bad), "not UTF-8 (byte 0xe9 at offset 17, line 1)")


def test_config_file_not_yaml_is_one_line(workdir, capsys):
    bad = workdir / "bad.yaml"
    bad.write_text("train: [1, 2\nrun: {}\n", encoding="utf-8")
    fails_with(["--config", str(bad), "--no-ray"], capsys, workdir, str(bad), "not valid YAML")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_out_dir_the_os_refuses(workdir, capsys):
    fails_with(["--no-ray", "run.out_dir=/proc/seqgan-x"], capsys, workdir, "run.out_dir=/proc/seqgan-x",
               "cannot create /proc/seqgan-x: No such file or directory")


def test_out_dir_under_a_file(workdir, capsys):
    (workdir / "notes.txt").write_text("a file\n")
    for value in ("notes.txt", "notes.txt/runs"):
        fails_with(["--no-ray", f"run.out_dir={value}"], capsys, workdir, f"run.out_dir={value}",
                   "notes.txt is a file, not a folder")


def test_reproduce_and_tune_out_dir(workdir, capsys):
    (workdir / "notes.txt").write_text("a file\n")
    fails_with(["reproduce", "--config", str(ROOT / "configs" / "reproduce_synthetic.yaml"), "--no-ray",
                "reproduce.out_dir=notes.txt/rep"], capsys, workdir, "reproduce.out_dir=notes.txt/rep",
               "is a file, not a folder")
    fails_with(["tune", "--config", str(ROOT / "configs" / "tune_oracle.yaml"), "tune.out_dir=notes.txt/t"],
               capsys, workdir, "tune.out_dir=notes.txt/t", "is a file, not a folder")


def test_prepare_out_under_a_file(workdir, capsys):
    (workdir / "notes.txt").write_text("a file\n")
    fails_with(["prepare", "--input", "notes.txt", "--out", "notes.txt/corpus", "--quiet"], capsys, workdir,
               "--out=notes.txt/corpus", "notes.txt is a file, not a folder")


def test_check_folder_leaves_nothing_and_reports_an_unwritable_folder(tmp_path, monkeypatch):
    check_folder(tmp_path / "a" / "b" / "c", key="run.out_dir", value="a/b")
    assert list(tmp_path.iterdir()) == []  # made to find out, then removed
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root may write anywhere
    with pytest.raises(ConfigError, match=r"run.out_dir=x: cannot write in .*: Permission denied"):
        check_folder(tmp_path, key="run.out_dir", value="x")


def test_seq_len_1(workdir, capsys):
    fails_with(["--no-ray", "data.seq_len=1"], capsys, workdir, "'data.seq_len' must be >= 2", "Eq. 4")


def test_help_lists_every_command_and_each_has_its_own_help(capsys):
    text = build_parser().format_help()
    for name in ("train", "tune", "prepare", "sample", "reproduce", "evaluate"):
        (line,) = [ln for ln in text.splitlines() if ln.startswith(f"  {name} ")]
        assert len(line) <= 100 and COMMANDS[name] in line
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        usage = capsys.readouterr().out.splitlines()[0]
        assert usage.startswith("usage: run.py" if name == "train" else f"usage: run.py {name}")
