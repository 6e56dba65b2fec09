"""Reap what an embedded Ray leaves behind when its driver is killed outright.

A driver killed with SIGKILL (the OOM killer, `kill -9`) takes its GCS and raylet with it,
but not the raylet's agents: ray::DashboardAgent and ray::RuntimeEnvAgent see their raylet
die within a second, then try to report it to the dead GCS, with a 60 s timeout (Ray 2.60,
`ray._private.utils.publish_error_to_driver`), and stay 1 to 6 minutes on a busy machine,
competing with the next run. Ray offers no setting that ends them with the driver.

So every embedded start writes a marker into its Ray session folder (the driver's and the
raylet's PID and start time), and the next embedded start reaps the processes of sessions
whose driver and raylet are both gone: only `ray::` processes with files open in that
session's folder (their logs; their environment cannot tell, as setproctitle overwrites
it). A cluster this project did not start has no marker and is never touched; nor is one
whose driver still lives.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

MARKER = "seqgan_embedded.json"


def _started(pid: int) -> float | None:
    """The start time of process `pid`, None if there is none."""
    import psutil  # Ray ships it (ray/thirdparty_files, on sys.path once ray is imported)

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _alive(pid: int, started: float | None) -> bool:
    return started is not None and _started(pid) == started


def mark_session(session_dir: Path, raylet_pid: int) -> None:
    """Record in this embedded Ray's session folder who started it."""
    me = os.getpid()
    (session_dir / MARKER).write_text(json.dumps({"driver_pid": me, "driver_started": _started(me),
                                                  "raylet_pid": raylet_pid, "raylet_started": _started(raylet_pid)}))


def reap_orphans(temp_dir: Path, *, keep: Path | None = None) -> list[str]:
    """SIGKILL the processes left by the embedded Rays under `temp_dir` (Ray's /tmp/ray) whose
    driver and raylet are dead; `keep`: the session just started. Returns the reaped
    processes' titles."""
    import psutil

    stale = []
    for marker in temp_dir.glob(f"session_*/{MARKER}"):
        if keep is not None and marker.parent == keep:
            continue
        try:
            info = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError, KeyError):
            continue
        if _alive(info["driver_pid"], info["driver_started"]) or _alive(info["raylet_pid"],
                                                                        info["raylet_started"]):
            continue
        stale.append(marker)
    reaped = []
    if not stale:
        return reaped
    folders = tuple(f"{marker.parent}{os.sep}" for marker in stale)
    for proc in psutil.process_iter():
        try:
            title = (proc.cmdline() or [""])[0]
            if not title.startswith("ray::") or not any(f.path.startswith(folders) for f in proc.open_files()):
                continue
            proc.send_signal(signal.SIGKILL)
            reaped.append(title)
        except psutil.Error:  # gone meanwhile, or not ours to read
            continue
    for marker in stale:
        marker.unlink(missing_ok=True)
    return reaped
