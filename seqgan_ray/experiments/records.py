"""A reproduce file's finished runs kept as small records (reproduce.records), so that its report
can be written again where the run folders are gone: a fresh clone, another machine, a cleaned
disk. Writing the report keeps one record for each run that has finished in out_dir:

    <records>/seed<k>/<run>/   (and seed<k>/pretrain/ for the shared pretraining)
        config.yaml, summary.json, data_source.txt, frontier.csv   as the run wrote them
        metrics.jsonl   each record's step, epoch, phase and the keys the report reads
                        (eval/*, time/*, gen/param_change, relaxed/inverse_temperature)
        nll_test.json   the final generator's NLL-test, which the report otherwise reads off its weights

No weights and no checkpoints: a record is tens of kilobytes to a few hundred, small enough to
commit beside the report. The report reads a run from out_dir when it finished there, else from
its record when the record was trained with the file's config (`usable_record`), so a record can
neither resume nor extend a run: the command trains such a run again in out_dir, and once it
finishes there its record is replaced.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from .reproduce import TRIVIA, Plan, _differences, _pretraining_only

COPIED = ("config.yaml", "summary.json", "data_source.txt", "frontier.csv")
NLL_TEST = "nll_test.json"
_KEYS = ("step", "epoch", "phase", "gen/param_change", "relaxed/inverse_temperature")
_PREFIXES = ("eval/", "time/")
_refused: set[Path] = set()  # records already said to be unused, so the message comes once


def record_dir(plan: Plan, seed: int, name: str) -> Path:
    return Path(plan.rep.records) / f"seed{seed}" / name


def usable_record(plan: Plan, seed: int, name: str) -> Path | None:
    """Run `name`'s (or "pretrain"'s) record for `seed` when one was kept and its config is the
    one the file would train now (up to where output goes); else None, with a line on stderr
    naming the first key that differs."""
    folder = record_dir(plan, seed, name)
    if not (folder / "summary.json").is_file() or (name != "pretrain" and name not in plan.run_configs):
        return None
    if name == "pretrain":
        want, ignored = plan.pretrain_config(seed), _pretraining_only
    else:
        want, ignored = plan.config(name, seed), TRIVIA.__contains__
    diff = _differences(folder, want, ignored)
    if not diff and name != "pretrain":  # a record holds a whole run: a longer one is not it
        from ..config import load_config

        ran = load_config(folder / "config.yaml", saved=True).train.adv_iterations
        if ran != want.train.adv_iterations:
            diff = [("train.adv_iterations", ran, want.train.adv_iterations)]
    if diff:
        if folder not in _refused:
            _refused.add(folder)
            key, have, wanted = diff[0]
            print(f"records: {folder} was trained with {key}={have!r} and the reproduce file says {wanted!r}; "
                  f"the report leaves it out (train the run again, or delete the record)", file=sys.stderr)
        return None
    return folder


def keep_finished(plan: Plan, nll_tests: dict[tuple[int, str], float]) -> list[Path]:
    """A record of every run (and shared pretraining) that has finished in out_dir, each in
    place of the one kept before; `nll_tests` gives the NLL-test of each (seed, folder) that has
    one. Returns the records written."""
    if not plan.rep.records:
        return []
    kept = []
    for seed in plan.rep.seeds:
        for name in ("pretrain", *plan.runs_for(seed)):
            run_dir = plan.folder(seed) / name
            if (run_dir / "summary.json").is_file():
                kept.append(keep(run_dir, record_dir(plan, seed, name), nll_tests.get((seed, name))))
    return kept


def keep(run_dir: Path, dest: Path, nll_test: float | None) -> Path:
    """Write `run_dir`'s record into `dest`, whole or not at all: it is written beside `dest`
    first, then put in its place."""
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in COPIED:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, tmp / name)
    with open(run_dir / "metrics.jsonl", encoding="utf-8") as src, \
            open(tmp / "metrics.jsonl", "w", encoding="utf-8") as out:
        for line in src:
            if line.strip() and (slim := _slim(json.loads(line))):
                out.write(json.dumps(slim) + "\n")
    if nll_test is not None:
        (tmp / NLL_TEST).write_text(json.dumps({"nll_test": nll_test}) + "\n", encoding="utf-8")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def _slim(record: dict[str, Any]) -> dict[str, Any] | None:
    """The keys of a metrics record the report reads; None when it has none beyond its place."""
    out = {k: v for k, v in record.items()
           if k in _KEYS or k.startswith(_PREFIXES)}
    if not set(out) - {"step", "epoch", "phase"}:
        return None
    return out  # unrounded: the time table's means, read from records, are the run folder's to the digit


def read_nll_test(run_dir: Path) -> float | None:
    """A record's NLL-test; None for a run folder (its generator's weights give it)."""
    path = run_dir / NLL_TEST
    return json.loads(path.read_text(encoding="utf-8"))["nll_test"] if path.is_file() else None
