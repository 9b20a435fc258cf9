"""Leftover Ray processes of a killed driver, found by id and ended on resume.

Measured here: after ``kill -9`` of a driver that started Ray locally, Ray's
``DashboardAgent`` and ``RuntimeEnvAgent`` outlive it (minutes, not seconds). The driver writes
its driver file (:attr:`RunDir.driver_json`) with its own pid and the pids of every process it
started (with their start times, so a reused pid is never mistaken for ours); ``minsearch
resume`` ends those that are still alive, and, when the old driver led its own session
(``setsid``), every Ray process left in that session. Linux ``/proc`` only; elsewhere this is
a no-op.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from minsearch.errors import UserError


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields after the command name


def start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live process; None when gone or a zombie."""
    fields = _stat(pid)
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of /proc/PID/stat


def _all_pids() -> list[int]:
    try:
        return [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return []


def descendants(root: int) -> list[int]:
    """Pids of every live descendant of ``root``."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        fields = _stat(pid)
        if fields:
            children.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _session(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[3]) if fields else None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def record_driver(path: Path) -> None:
    """Write the driver's pid, session and started processes to the driver file ``path``."""
    me = os.getpid()
    procs = {str(pid): start_time(pid) for pid in descendants(me)}
    info = {"pid": me, "start": start_time(me), "session": _session(me), "processes": procs}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(path)


def stale_processes(path: Path) -> list[int]:
    """Live processes started by the previous driver recorded in ``path``, if that driver is
    dead."""
    if not path.is_file():
        return []
    info = json.loads(path.read_text())
    if start_time(info["pid"]) == info["start"]:
        raise UserError(f"The search in {path.parent} is still running (driver pid "
                        f"{info['pid']}); stop it before resuming.")
    stale = [int(pid) for pid, start in info["processes"].items()
             if start is not None and start_time(int(pid)) == start]
    if info.get("session") == info["pid"]:  # the old driver led its session: sweep it too
        stale += [pid for pid in _all_pids() if _session(pid) == info["pid"]
                  and start_time(pid) and "ray" in _cmdline(pid) and pid not in stale]
    return stale


def end_stale_processes(path: Path, timeout: float = 5.0) -> list[int]:
    """SIGKILL the leftovers (by pid) of the previous driver recorded in ``path``; returns the
    pids ended."""
    stale = stale_processes(path)
    for pid in stale:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(start_time(pid) for pid in stale):
        time.sleep(0.1)
    return stale
