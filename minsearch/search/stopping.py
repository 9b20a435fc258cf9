"""Stopping a driver: Ctrl-C and SIGTERM take one path, and the books are closed once.

- **SIGINT** (Ctrl-C, sent to the driver's whole process group; Ray's own processes block it):
  while ``Tuner.fit`` runs, Ray Tune's handler ends the tuning loop, snapshots the experiment
  and *returns normally* with the unfinished trials still RUNNING/PENDING (measured: Ray 2.60).
  The controller therefore decides "interrupted" from what ``fit`` returned (a trial not
  finished, or fewer trials than asked for: :func:`unfinished`) as well as from the signals
  recorded here. Outside ``fit`` (parent training, MLflow, Ray start) the handler installed
  here raises ``KeyboardInterrupt``.
- **SIGTERM**: Ray's core worker installs a crash handler for it in the driver (measured: a
  stack dump from ``logging.cc`` and exit -6). :class:`StopSignals` records SIGTERM and raises
  SIGINT in the driver, so SIGTERM takes exactly the Ctrl-C path; its handler is installed again
  after ``ray.init`` (:meth:`StopSignals.install`).
- Once the controller stops the trials (:meth:`StopSignals.defer`), further signals are only
  recorded: Ray's shutdown and the final bookkeeping (results, Optuna, MLflow, status) run to
  the end. ``kill -9`` remains the hard stop; ``minsearch resume`` recovers from it.

The driver exits 130 after SIGINT and 143 after SIGTERM (128 + the signal number, the shell's
convention), with the run folder in status ``interrupted``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class SearchInterrupted(KeyboardInterrupt):
    """A search stopped by a signal, after its books were closed; ``exit_code`` is 128 + the
    signal number."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + int(signum)


class StopSignals:
    """The driver's SIGINT/SIGTERM handlers; ``received`` is the first stop signal seen."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._deferred = False

    def _note(self, signum: int) -> None:
        if self.received is None:
            self.received = signum

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self._note(signum)
        if not self._deferred:
            raise KeyboardInterrupt

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._note(signum)
        if not self._deferred:
            signal.raise_signal(signal.SIGINT)  # whoever handles Ctrl-C now (Ray Tune or us)

    def install(self) -> None:
        """(Re)install both handlers: after ``ray.init``, whose crash handler takes SIGTERM.
        Only the main thread can; elsewhere (a library caller's thread) this does nothing."""
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGINT, self._on_sigint)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def defer(self) -> None:
        """From now on, record stop signals without acting on them (closing the books)."""
        self._deferred = True
        self.install()

    def interrupted(self, signum: int = signal.SIGINT) -> None:
        """Record that the driver was interrupted (a KeyboardInterrupt seen, or Ray Tune's
        handler took the SIGINT) unless a signal was recorded already."""
        self._note(signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.received or signal.SIGINT).name


@contextlib.contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """Install :class:`StopSignals` for the block; restore the previous handlers after it."""
    stop = StopSignals()
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    stop.install()
    try:
        yield stop
    finally:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in zip((signal.SIGINT, signal.SIGTERM), previous, strict=True):
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def unfinished(grid: Any, trials: int, jobs: bool = False) -> bool:
    """Whether the ``ResultGrid`` that ``Tuner.fit`` returned is short of a finished search of
    ``trials`` trials (Ray Tune returns normally after taking a SIGINT); ``jobs``: a
    multi-fidelity search, whose number of trials its searcher decides."""
    short = len(grid) < trials and not jobs
    return short or grid.num_terminated + grid.num_errors < len(grid)
