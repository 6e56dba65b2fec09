"""Checkpoints: one file per (phase, step), written atomically; the newest N are kept, and
the last of every earlier phase (a run can start again from its pretrained generator).

A checkpoint holds everything needed to continue: the generator, the rollout policy β, the
discriminator, both roles' optimizers and RNG states, the rollout workers' RNG states, the
config, the position in the schedule and how many metric records had been written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from .config import SHAPE, Config, keys_with

# Bumped when saved tensors change meaning: 2 = discriminator filters stored time-major
# (filter_w / filter_b) instead of conv1d's layout (conv_w / conv_b).
FORMAT = 2
PHASE_ORDER = ("pretrain_g", "pretrain_d", "adversarial", "done")
NAME = re.compile(r"^(?P<phase>[a-z_]+)_(?P<step>\d+)\.pt$")
SHAPE_KEYS = keys_with(SHAPE)  # config keys that fix the shapes of the saved tensors


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, or does not fit the config; the message says which."""


def _order(path: Path) -> tuple[int, int]:
    m = NAME.match(path.name)
    return (PHASE_ORDER.index(m["phase"]), int(m["step"])) if m and m["phase"] in PHASE_ORDER else (-1, -1)


def _checkpoints(folder: Path) -> list[Path]:
    """The checkpoints in `folder`, oldest first (by phase, then step)."""
    return sorted((p for p in folder.glob("*.pt") if _order(p)[0] >= 0), key=_order) if folder.is_dir() else []


def save_checkpoint(folder: Path, name: str, state: dict[str, Any], *, keep: int) -> Path:
    """Write `state` atomically (temporary file, then rename); keep the newest `keep` and the
    newest of each phase (at most two more files: the ends of G's and D's pretraining)."""
    path = folder / f"{name}.pt"
    tmp = folder / f".{name}.pt.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:  # opened here: torch.save's own open hides the OSError
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before it replaces anything
        os.replace(tmp, path)
    except OSError as exc:  # disk full, a read-only or immutable folder, quota
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise CheckpointError(_unwritable(path, exc)) from None
    ckpts = _checkpoints(folder)
    newest_of_phase = {NAME.match(p.name)["phase"]: p for p in ckpts}  # sorted: the last one wins
    for old in ckpts[:-keep]:
        if old not in newest_of_phase.values():
            try:
                old.unlink(missing_ok=True)
            except OSError:  # the new one is written; an old one left over does no harm
                pass
    return path


def _unwritable(path: Path, exc: OSError) -> str:
    """One line: which checkpoint could not be written, why, and how to go on from the newest
    one that exists."""
    run_dir = path.parent.parent
    ckpts = _checkpoints(path.parent)
    how = (f"the newest is {ckpts[-1].name}: make room or make the folder writable, then resume with: "
           f"python run.py --resume {run_dir}" if ckpts
           else "none was written yet: make room or make the folder writable, then start the run again")
    return f"cannot write checkpoint {path} ({exc.strerror or exc}); the run stopped; {how}"


def latest_checkpoint(folder: Path) -> Path:
    ckpts = _checkpoints(folder)
    if not ckpts:
        raise CheckpointError(f"{folder}: no checkpoint to resume from (the run stopped before "
                              f"its first one); start it again without --resume")
    return ckpts[-1]


def load_checkpoint(path: Path, cfg: Config) -> dict[str, Any]:
    """Load `path`, checking that it is whole and was made with the same model shapes as `cfg`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle garbage, ...
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({type(exc).__name__}); "
                              f"delete it to resume from the one before") from None
    missing = {"phase", "step", "config", "learner", "discriminator"} - set(state)
    if missing:
        raise CheckpointError(f"{path}: not a seqgan-ray checkpoint (no {sorted(missing)[0]})")
    if state.get("format", 1) != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {state.get('format', 1)}, but this version of "
                              f"seqgan-ray reads format {FORMAT}; start the run again (or resume it "
                              f"with the version that wrote it)")
    want = cfg.to_dict()
    defaults = Config().to_dict()
    for key in SHAPE_KEYS:
        section, name = key.split(".")
        # a key newer than the checkpoint (e.g. generator.kind) had its default when it was made
        have = state["config"].get(section, {}).get(name, defaults[section][name])
        if have != want[section][name]:
            raise CheckpointError(f"{path} was made with {key}={have}, but the config says "
                                  f"{want[section][name]}; use the run's own config.yaml")
    return state
