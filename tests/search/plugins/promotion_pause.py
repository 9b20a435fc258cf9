"""Sleep ``MINSEARCH_TEST_PROMOTION_PAUSE`` seconds before a multi-fidelity promotion trains
its second seed (a job of a genome other than the baseline that trains seed 1): a window in
which the promotion has saved seed 0's rung checkpoint and not yet trained seed 1, for a test
to kill the driver in."""

from __future__ import annotations

import os
import time

from minsearch.search.hooks import TrialStart, register_trial_hook

VARIABLE = "MINSEARCH_TEST_PROMOTION_PAUSE"


@register_trial_hook
def pause_in_promotions(start: TrialStart) -> None:
    baseline = all(label == "keep" for label in start.params.values())
    if start.stop_epoch is not None and start.seed == 1 and not baseline:
        time.sleep(float(os.environ.get(VARIABLE) or 0))
