"""`run.py evaluate` end to end: in a subprocess, and on a text run."""

from __future__ import annotations

import csv
import subprocess
import sys

from seqgan_ray.cli import main
from seqgan_ray.experiments.frontier import FILES
from tests.helpers import ROOT


def test_a_text_run(tmp_path, capsys):
    from tests.helpers import TINY_TEXT, text_corpus

    train_txt, test_txt = text_corpus(tmp_path / "text")
    assert main(["--no-ray", f"data.corpus={train_txt}", f"data.test_text={test_txt}",
                 f"run.out_dir={tmp_path / 'runs'}", "run.name=t", *TINY_TEXT]) == 0
    run = tmp_path / "runs" / "t"
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--num", "32", "--temperatures", "0.8,1.2", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| run | temperature | BLEU-2 |") and len(lines) == 4
    with open(run / "frontier.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        assert all(0 <= float(row[f"{k}-{n}"]) <= 1 for k in ("BLEU", "Self-BLEU") for n in range(2, 6))
        assert 0 < float(row["NLL-test"]) < 10
    assert (run / "frontier.png").is_file()


def test_run_py_evaluate(run_dir):
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "evaluate", "--run", str(run_dir),
                           "--num", "32", "--temperatures", "0.9,1,...,1.1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "| run | temperature | NLL-oracle | ± | NLL-test |" and len(lines) == 5
    assert [line.split(" | ")[1] for line in lines[2:]] == ["0.9", "1.0", "1.1"]
    assert "[frontier] 3/3" in proc.stderr and "wrote frontier.csv, frontier.md, frontier.png" in proc.stderr
    assert all((run_dir / name).is_file() for name in FILES)


def test_separability_of_a_run(run_dir):
    """The likelihood-ratio ceiling and each model's NLLs of a tiny run, in a subprocess; a
    clear error for a folder that is not a run."""
    cmd = [sys.executable, "-m", "seqgan_ray.experiments.separability"]
    proc = subprocess.run([*cmd, str(run_dir), "--samples", "64", "--train-d", "2"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| the oracle |" in proc.stdout and "| G |" in proc.stdout
    rounds = [line.split(" | ") for line in proc.stdout.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert [r[0] for r in rounds] == ["| 1", "| 2"] and all(0 <= float(x.strip(" |")) <= 1 for r in rounds for x in r[1:])
    acc = float(proc.stdout.split("accuracy ")[1].split(" ")[0])
    assert 0.5 <= acc <= 1.0
    proc = subprocess.run([*cmd, str(run_dir / "checkpoints")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "not a run folder" in proc.stderr


def test_more_rounds_of_a_runs_own_d_from_its_checkpoint(run_dir):
    """--more-d: the run's own D from a whole checkpoint, more rounds as its run trains one, its
    accuracy before and after; the run's folder is left as it was."""
    from seqgan_ray.checkpoint import latest_checkpoint

    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    cmd = [sys.executable, "-m", "seqgan_ray.experiments.separability", str(run_dir), "--samples", "64"]
    proc = subprocess.run([*cmd, "--checkpoint", str(checkpoint), "--more-d", "3"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = proc.stdout.split("more rounds as its run trains one")[1]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith(("| 0 |", "| 3 |"))]
    assert [r[0] for r in rows] == ["| 0", "| 3"] and all(0 <= float(x.strip(" |")) <= 1 for r in rows for x in r[1:])
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    proc = subprocess.run([*cmd, "--more-d", "3"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--checkpoint" in proc.stderr
