"""The driver's stop signals without Ray: SIGTERM takes the Ctrl-C path, signals are only noted
once the books are being closed, and a short result grid means the search was stopped."""

from __future__ import annotations

import os
import signal

import pytest

from minsearch.search.stopping import SearchInterrupted, stop_signals, unfinished


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_raise_keyboard_interrupt_and_are_recorded(signum):
    before = signal.getsignal(signal.SIGTERM)
    with stop_signals() as stop:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)  # the handler runs before the next bytecode
        assert stop.received == signum and stop.name == signal.Signals(signum).name
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored


def test_deferred_signals_are_noted_not_raised():
    with stop_signals() as stop:
        stop.defer()
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.received == signal.SIGTERM  # the first one


def test_exit_codes_follow_the_shell_convention():
    assert SearchInterrupted("x").exit_code == 130
    assert SearchInterrupted("x", signal.SIGTERM).exit_code == 143
    assert isinstance(SearchInterrupted("x"), KeyboardInterrupt)


@pytest.mark.parametrize(("terminated", "errors", "total", "stopped"), [
    (4, 0, 4, False), (3, 1, 4, False),  # every trial ended
    (2, 0, 4, True),  # two still running or pending
    (2, 0, 2, True),  # stopped before the last trials were created
])
def test_a_short_result_grid_means_stopped(terminated, errors, total, stopped):
    class Grid:
        num_terminated, num_errors = terminated, errors

        def __len__(self) -> int:
            return total

    assert unfinished(Grid(), trials=4) is stopped
