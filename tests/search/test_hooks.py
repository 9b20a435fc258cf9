"""Trial hooks: registered once, called in order with what the trial is about to train; a hook
that raises fails the trial (the trainable records the error as the trial's reason)."""

from __future__ import annotations

import json
import os

import pytest

from minsearch.search.hooks import (
    TrialStart,
    register_trial_hook,
    run_trial_hooks,
    trial_hooks,
    unregister_trial_hook,
)


@pytest.fixture
def calls():
    seen: list[tuple[str, TrialStart]] = []

    def first(start):
        seen.append(("first", start))

    def second(start):
        seen.append(("second", start))

    register_trial_hook(first)
    register_trial_hook(first)  # once only
    register_trial_hook(second)
    yield seen
    unregister_trial_hook(first)
    unregister_trial_hook(second)


def test_hooks_run_in_order_with_the_trial_start(calls):
    start = TrialStart("t1", {"norm": "dyt"}, start_epoch=2)
    run_trial_hooks(start)
    assert calls == [("first", start), ("second", start)]


def test_unregistered_hooks_are_gone(calls):
    before = len(trial_hooks())
    unregister_trial_hook(trial_hooks()[-1])
    assert len(trial_hooks()) == before - 1


def test_a_hook_must_be_callable():
    with pytest.raises(TypeError, match="must be callable"):
        register_trial_hook("not a function")


def test_the_test_plugins_fail_and_log(monkeypatch, tmp_path):
    from tests.search.plugins import fail_when, trial_log

    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(trial_log.VARIABLE, str(log))
    monkeypatch.setenv(fail_when.VARIABLE, json.dumps({"residual": "layerscale"}))
    trial_log.log_training(TrialStart("a", {"residual": "keep"}, 0))
    fail_when.fail_when(TrialStart("a", {"residual": "keep"}, 0))  # no match: nothing
    with pytest.raises(RuntimeError, match="injected failure"):
        fail_when.fail_when(TrialStart("b", {"residual": "layerscale"}, 0))
    line = json.loads(log.read_text())
    assert line.pop("time") > 0 and line == {"trial_id": "a", "start_epoch": 0, "seed": 0,
                                             "stop_epoch": None, "params": {"residual": "keep"},
                                             "node": "",
                                             "ip": "", "pid": os.getpid()}
