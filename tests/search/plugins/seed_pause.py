"""Sleep ``MINSEARCH_TEST_SEED_PAUSE`` seconds before training every seed but a trial's first:
a window in which a trial has finished a seed (and checkpointed it) and not started the next,
for a test to kill the driver in."""

from __future__ import annotations

import os
import time

from minsearch.search.hooks import TrialStart, register_trial_hook

VARIABLE = "MINSEARCH_TEST_SEED_PAUSE"
FIRST_SEED = 0  # the tests' tasks train seeds 0, 1, ...


@register_trial_hook
def pause_between_seeds(start: TrialStart) -> None:
    if start.seed != FIRST_SEED and start.start_epoch == 0:
        time.sleep(float(os.environ.get(VARIABLE) or 0))
