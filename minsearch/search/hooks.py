"""Trial hooks: functions a plugin registers to run at the start of every trial.

A hook is called in the trial's worker, after the worker has loaded the space's plugins and
built the candidate for a training seed, before it trains that seed (once per seed; a genome
refused by a budget is never trained and calls no hook), with a :class:`TrialStart`. A hook
that raises fails the trial with that error as its reason (recorded like any other failure).
Hooks are for observing and testing a search (log every training run, inject a failure), not
for changing what a trial trains: they get a copy of the trial's choices and nothing they
could modify.

Register from a plugin module (``plugins: [mypackage.hooks]`` in the space file)::

    from minsearch.search.hooks import register_trial_hook

    def log_start(start):
        print(start.trial_id, start.params)

    register_trial_hook(log_start)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

TrialHook = Callable[["TrialStart"], None]

_HOOKS: list[TrialHook] = []


@dataclass(frozen=True)
class TrialStart:
    """What a trial is about to train: its Ray trial id, its choice per gene, the training
    seed (a trial trains once per seed of the task's ``seeds``, one after another; a hook runs
    before each) and the epoch it starts from (> 0 when it continues from a checkpoint)."""

    trial_id: str
    params: dict[str, str] = field(default_factory=dict)
    start_epoch: int = 0
    seed: int = 0
    stop_epoch: int | None = None  # multifidelity: the job trains this seed up to this epoch


def register_trial_hook(hook: TrialHook) -> TrialHook:
    """Add ``hook`` (once; usable as a decorator); returns it."""
    if not callable(hook):
        raise TypeError(f"A trial hook must be callable, but got {hook!r}.")
    if hook not in _HOOKS:
        _HOOKS.append(hook)
    return hook


def unregister_trial_hook(hook: TrialHook) -> None:
    """Remove ``hook`` if it is registered."""
    if hook in _HOOKS:
        _HOOKS.remove(hook)


def trial_hooks() -> tuple[TrialHook, ...]:
    return tuple(_HOOKS)


def run_trial_hooks(start: TrialStart) -> None:
    """Call every registered hook with ``start``, in registration order."""
    for hook in tuple(_HOOKS):
        hook(start)
