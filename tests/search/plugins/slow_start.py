"""Sleep ``MINSEARCH_TEST_TRIAL_SLEEP`` seconds at the start of every trial: a trial that
lasts longer than the skew between two workers' start-up, without using a CPU (so that a
test can tell trials that overlap from trials run one after another)."""

from __future__ import annotations

import os
import time

from minsearch.search.hooks import TrialStart, register_trial_hook

VARIABLE = "MINSEARCH_TEST_TRIAL_SLEEP"


@register_trial_hook
def sleep_first(start: TrialStart) -> None:
    time.sleep(float(os.environ.get(VARIABLE) or 0))
