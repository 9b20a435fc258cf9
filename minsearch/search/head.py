"""Checking that a Ray cluster's head answers before a driver joins it.

``ray.init(address=HOST:PORT)`` with no head there retries for minutes, logging a C++ warning
every few seconds (measured, Ray 2.60). A search or resume given ``--address`` first opens a
TCP connection to the head's GCS port: a head that is not there is one clear line, and the
run folder is left as it was, so the same command works once a head is back.

A head lost while a search runs (:func:`watch_head`) ends the driver with one line that says
how to go on, instead of Ray's C++ termination a minute later.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from minsearch.errors import UserError

CONNECT_SECONDS = 5.0


def check_head(address: str | None, timeout: float = CONNECT_SECONDS) -> None:
    """A UserError when nothing listens at ``address`` (``HOST:PORT``); None and ``auto``
    (Ray finds the cluster started on this machine) are left to Ray."""
    if address is None or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r} is not HOST:PORT (the head's address that "
                        f"`ray start --head` printed, e.g. 10.0.0.1:6379) or `auto`.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise UserError(f"No Ray head answers at {address} ({err.strerror or err}); start one "
                        f"there (`ray start --head --port {port}`) or give the right --address, "
                        f"then run the same command again.") from None


LOST_SECONDS = 3.0  # a head that refuses or ignores connections this long is gone
PROBE_SECONDS = 0.5
EXIT_HEAD_LOST = 3


def head_lost_message(address: str, reason: str, run_path: Path) -> str:
    """The one line a driver says when its head is lost mid-search: what, and the fix."""
    host, _, port = address.rpartition(":")
    return (f"minsearch: error: the Ray head at {address} stopped answering ({reason}) while "
            f"the search ran: the cluster and its trials in flight are lost. Start a head "
            f"again (`ray start --head --port {port}`), rejoin the workers (`ray start "
            f"--address {host}:{port}` on each), then continue with `minsearch resume "
            f"{run_path} --address {host}:{port}`; finished trials are kept.")


def _unanswered(host: str, port: int) -> str | None:
    """Why a TCP connection to the head fails (None: it answers)."""
    try:
        with socket.create_connection((host, port), timeout=LOST_SECONDS / 2):
            return None
    except OSError as err:
        return err.strerror or str(err)


@contextlib.contextmanager
def watch_head(address: str, run_path: Path) -> Iterator[None]:
    """While the block runs, probe the head's GCS port every :data:`PROBE_SECONDS`; when it
    has not answered for :data:`LOST_SECONDS`, print :func:`head_lost_message` and end the
    process at once with status :data:`EXIT_HEAD_LOST`.

    Why end it: without its head (GCS), a Ray driver blocks until Ray's C++ client gives up
    (``gcs_rpc_server_reconnect_timeout_s``, 60 s by default) and then terminates the process
    itself with a C++ log line, and nothing the driver holds can reach the cluster again: a
    new head is a new cluster (no GCS fault tolerance here). The run folder is left as a
    killed driver leaves it, which ``minsearch resume`` continues (docs/distributed.md)."""
    host, _, port = address.rpartition(":")
    stop = threading.Event()

    def probe() -> None:
        since = None
        while not stop.wait(PROBE_SECONDS):
            reason = _unanswered(host.strip("[]"), int(port))
            if reason is None:
                since = None
                continue
            since = since or time.monotonic()
            if time.monotonic() - since >= LOST_SECONDS and not stop.is_set():
                print(head_lost_message(address, reason, run_path), file=sys.stderr, flush=True)
                os._exit(EXIT_HEAD_LOST)

    thread = threading.Thread(target=probe, name="minsearch-head-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
