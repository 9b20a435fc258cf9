"""One driver per run folder: an exclusive lock on the folder itself, held for the driver's life.

``search`` and ``resume`` take the lock before they write anything (``search`` creates the
folder, locks it, then checks again that it holds no search) and hold it until the driver
exits; a second driver on the same folder is refused with one line naming the holder's pid,
and changes nothing. The lock is ``flock(LOCK_EX | LOCK_NB)`` on a file descriptor of the
directory: it adds no file (a refused command leaves the folder byte-identical), it is released
by the kernel when the driver dies however it dies (``kill -9`` included), and the descriptor is
not inherited by the processes the driver starts (Python opens it close-on-exec), so Ray's
processes that outlive a killed driver do not keep it. The holder's pid is read from
``/proc/locks`` (Linux; elsewhere it is unknown), which also lets :func:`lock_holder` look
without locking.

``driver.json`` (:mod:`minsearch.search.processes`) is still written: it lists what a driver
started, so that the next driver can end the leftovers of a dead one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from minsearch.errors import UserError


def lock_holder(path: str | Path) -> int | None:
    """The pid holding a ``flock`` on the folder ``path`` (Linux ``/proc/locks``), else None."""
    try:
        info = os.stat(path)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()  # 1: FLOCK ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF
        if len(fields) < 6 or fields[1] != "FLOCK":  # not "->" (a waiter), not a POSIX lock
            continue
        major, minor, inode = fields[5].split(":")
        if (int(inode) == info.st_ino and int(major, 16) == os.major(info.st_dev)
                and int(minor, 16) == os.minor(info.st_dev)):
            return int(fields[4])
    return None


def busy_error(path: str | Path, pid: int | None) -> UserError:
    who = f"pid {pid}" if pid else "pid unknown"
    return UserError(f"{path} is being run by another minsearch process ({who}); wait for it "
                     f"or stop it.")


def check_free(path: str | Path) -> None:
    """Raise the one-line error when another process holds the folder ``path`` (this
    process's own lock is no obstacle). It looks only: taking the lock to test it could make a
    driver starting at that moment fail to take it."""
    pid = lock_holder(path)
    if pid is not None and pid != os.getpid():
        raise busy_error(path, pid)


@contextlib.contextmanager
def driver_lock(path: str | Path) -> Iterator[None]:
    """Hold the run folder ``path`` (an existing directory) exclusively; a UserError when
    another process holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"{path} is not a folder; a run folder is the folder a search "
                        f"writes (`minsearch search ... --out RUN_DIR`).") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy_error(path, lock_holder(path)) from None
        yield
    finally:
        os.close(fd)  # releases the lock
