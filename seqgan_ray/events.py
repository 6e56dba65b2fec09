"""What happens to a run between its checkpoints: `<run>/events.jsonl`.

metrics.jsonl is cut back to the checkpoint a run resumes from (its records must be those of
one uninterrupted run); what happened on the way there must not be. So the faults, the
recoveries and the attempts go to their own small file beside the checkpoints, one JSON
object a line, each appended, flushed and fsynced before training goes on: a SIGKILL loses
at most the line being written. `summary.json`'s totals are counted from it.

    {"t": 1765080000.123, "event": "start", "attempt": 1, "resume": false, "phase": "pretrain_g", "step": -1}

| event | when | fields |
|---|---|---|
| `start` | an attempt begins training (attempt 1: a new process; 2, 3: a recovery in it) | `attempt`, `resume`, `phase`, `step` |
| `step` | after every epoch / round / iteration (the heartbeat that times a killed process) | `phase`, `step`, `checkpoint` |
| `rollout_restart` | the pool found a rollout actor restarted by Ray | `worker`, `restarts` |
| `role_died` | a learner or discriminator actor died (or a rollout actor Ray will not restart) | `role`, `error` |
| `recovery` | new actors, continuing from the newest checkpoint | `attempt`, `checkpoint` |
| `gave_up` | no more recoveries (retries used up, no checkpoint, a stop signal) | `reason` |
| `stop` | an attempt ended with an exception (a signal, an actor's death, an error) | `reason` |
| `finish` | the run finished | |
| `before` | resuming a run from before this file existed: its checkpoint's totals | `rollout_restarts`, `wall_time_s` |
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENTS = "events.jsonl"
ROLES = ("rollout", "learner", "discriminator")


@dataclass
class Totals:
    """A run's totals over every attempt, as summary.json reports them."""

    restarts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))
    recoveries: int = 0  # new actors from the newest checkpoint, inside one process
    gave_up: int = 0     # processes that stopped after an actor's death, recoveries used up
    resumes: int = 0     # processes that continued the run from its checkpoint (--resume, reproduce)
    attempts: int = 0
    wall_time_s: float = 0.0  # every process's time training, the time redone after faults included


class EventLog:
    """Append-only events of one run folder."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / EVENTS

    def append(self, event: str, **fields: Any) -> None:
        line = json.dumps({"t": round(time.time(), 3), "event": event, **fields}) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            if f.tell() > 0:  # after a line a kill cut short, start a new one
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())

    def reset(self) -> None:
        """A run started afresh: its events start afresh too."""
        self.path.unlink(missing_ok=True)

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        events = []
        for line in self.path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
        return events

    def totals(self, *, now: float | None = None) -> Totals:
        return totals(self.read(), now=now)


def totals(events: list[dict[str, Any]], *, now: float | None = None) -> Totals:
    """Count `events`. Wall time: each process's span, from its first attempt's `start` to its
    last event (`now` for the last process, if given); a process killed outright loses the
    time since its last heartbeat, at most one step."""
    out = Totals()
    begun: float | None = None  # the current process's first start
    last: float | None = None
    for e in events:
        kind, t = e.get("event"), float(e.get("t", 0.0))
        if kind == "start":
            out.attempts += 1
            if e.get("attempt", 1) == 1:  # a new process
                if begun is not None:
                    out.wall_time_s += last - begun
                begun = t
                out.resumes += bool(e.get("resume"))
        elif kind == "rollout_restart":
            out.restarts["rollout"] += int(e.get("restarts", 1))
        elif kind == "role_died":
            role = e.get("role", "unknown")
            out.restarts[role] = out.restarts.get(role, 0) + 1
        elif kind == "recovery":
            out.recoveries += 1
        elif kind == "gave_up":
            out.gave_up += 1
        elif kind == "before":
            out.restarts["rollout"] += int(e.get("rollout_restarts", 0))
            out.wall_time_s += float(e.get("wall_time_s", 0.0))
        last = t
    if begun is not None:
        out.wall_time_s += max(now if now is not None else last, last) - begun
    return out
