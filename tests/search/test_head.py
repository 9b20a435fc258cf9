"""``--address`` with no Ray head there: one clear line, in seconds, before anything is
written (Ray itself would retry for minutes)."""

from __future__ import annotations

import socket
import time

import pytest

from minsearch.cli.main import main
from minsearch.errors import UserError
from minsearch.search.controller import on_loopback
from minsearch.search.head import check_head


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_head_that_answers_passes_and_one_that_does_not_is_one_line():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_head(f"127.0.0.1:{server.getsockname()[1]}")
    with pytest.raises(UserError, match=r"No Ray head answers at 127\.0\.0\.1:\d+ .*ray start "
                                        r"--head --port \d+"):
        check_head(f"127.0.0.1:{free_port()}")
    with pytest.raises(UserError, match="is not HOST:PORT"):
        check_head("head-without-port")
    check_head(None)  # local Ray
    check_head("auto")  # left to Ray


def test_search_with_no_head_writes_nothing(tiny_task, tiny_space, tmp_path, capsys):
    start = time.monotonic()
    code = main(["search", str(tiny_task), "--space", str(tiny_space), "--out",
                 str(tmp_path / "run"), "--address", f"127.0.0.1:{free_port()}"])
    assert code == 2 and time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No Ray head answers" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1:6379", True), ("localhost:1", True), ("[::1]:6379", True),
    ("10.77.0.1:6379", False), ("auto", False), (None, False)])
def test_loopback_addresses(address, loopback):
    assert on_loopback(address) is loopback


def test_a_head_lost_while_watched_ends_the_process_with_one_line(tmp_path):
    """``watch_head`` in a child process: while the head's port answers it waits; once the
    port is closed it says how to go on, in one line, and exits with EXIT_HEAD_LOST."""
    import subprocess
    import sys

    from minsearch.search.head import EXIT_HEAD_LOST, LOST_SECONDS

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    code = ("import sys, time; from pathlib import Path; "
            "from minsearch.search.head import watch_head\n"
            f"with watch_head({address!r}, Path({str(tmp_path / 'run')!r})):\n"
            "    print('watching', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "watching\n"
        time.sleep(LOST_SECONDS)  # a head that answers is watched, not lost
        assert child.poll() is None
        server.close()
        lost = time.monotonic()
        assert child.wait(timeout=30) == EXIT_HEAD_LOST
        assert time.monotonic() - lost < LOST_SECONDS + 5
    finally:
        child.kill()
        server.close()
    err = child.stderr.read()
    assert err.count("\n") == 1, err
    assert f"the Ray head at {address} stopped answering (Connection refused)" in err
    assert f"minsearch resume {tmp_path / 'run'} --address {address}" in err
