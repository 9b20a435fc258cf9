"""Checking that a Ray cluster's head answers before a driver joins it.

``ray.init(address=HOST:PORT)`` with no head there retries for minutes, logging a C++ warning
every few seconds (measured, Ray 2.60). A search or resume given ``--address`` first opens a
TCP connection to the head's GCS port: a head that is not there is one clear line, and the
run folder is left as it was, so the same command works once a head is back.
"""

from __future__ import annotations

import socket

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
