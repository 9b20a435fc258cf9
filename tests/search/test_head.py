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
