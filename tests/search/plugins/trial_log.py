"""Append one line per training run to the file ``MINSEARCH_TEST_TRIAL_LOG`` names (to prove
that no trial trains twice)."""

from __future__ import annotations

import json
import os

from minsearch.search.hooks import TrialStart, register_trial_hook

VARIABLE = "MINSEARCH_TEST_TRIAL_LOG"


@register_trial_hook
def log_training(start: TrialStart) -> None:
    path = os.environ.get(VARIABLE)
    if path:
        with open(path, "a") as log:
            log.write(json.dumps({"trial_id": start.trial_id,
                                  "start_epoch": start.start_epoch}) + "\n")
