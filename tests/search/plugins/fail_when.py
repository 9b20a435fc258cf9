"""Fail every trial whose choices match ``MINSEARCH_TEST_FAIL_WHEN`` (JSON ``{gene: label}``)."""

from __future__ import annotations

import json
import os

from minsearch.search.hooks import TrialStart, register_trial_hook

VARIABLE = "MINSEARCH_TEST_FAIL_WHEN"


@register_trial_hook
def fail_when(start: TrialStart) -> None:
    wanted = json.loads(os.environ.get(VARIABLE) or "{}")
    if wanted and all(start.params.get(k) == v for k, v in wanted.items()):
        raise RuntimeError(f"injected failure for {wanted} ({VARIABLE})")
