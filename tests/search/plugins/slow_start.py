"""Sleep ``MINSEARCH_TEST_TRIAL_SLEEP`` seconds at the start of every trial: a trial that
lasts longer than the skew between two workers' start-up, without using a CPU (so that a
test can tell trials that overlap from trials run one after another). And sleep
``MINSEARCH_TEST_BASELINE_SLEEP`` seconds more when the baseline (every gene ``keep``) starts
from scratch: the trials beside it end first and the searcher holds them."""

from __future__ import annotations

import os
import time

from minsearch.search.hooks import TrialStart, register_trial_hook

VARIABLE = "MINSEARCH_TEST_TRIAL_SLEEP"
BASELINE_VARIABLE = "MINSEARCH_TEST_BASELINE_SLEEP"


@register_trial_hook
def sleep_first(start: TrialStart) -> None:
    time.sleep(float(os.environ.get(VARIABLE) or 0))


@register_trial_hook
def sleep_baseline(start: TrialStart) -> None:
    if start.start_epoch == 0 and set(start.params.values()) == {"keep"}:
        time.sleep(float(os.environ.get(BASELINE_VARIABLE) or 0))
