"""Append one line per training run to the file ``MINSEARCH_TEST_TRIAL_LOG`` names (to prove
that no trial trains twice, and to see where and when each run started: Ray node id and address,
worker pid, Unix time)."""

from __future__ import annotations

import json
import os
import time

from minsearch.search.hooks import TrialStart, register_trial_hook

VARIABLE = "MINSEARCH_TEST_TRIAL_LOG"


@register_trial_hook
def log_training(start: TrialStart) -> None:
    path = os.environ.get(VARIABLE)
    if path:
        import ray

        where = {"node": "", "ip": ""}
        if ray.is_initialized():  # in a trial; not when a test calls the hook directly
            where = {"node": ray.get_runtime_context().get_node_id(),
                     "ip": ray.util.get_node_ip_address()}
        with open(path, "a") as log:
            log.write(json.dumps({"trial_id": start.trial_id, "start_epoch": start.start_epoch,
                                  "seed": start.seed, "stop_epoch": start.stop_epoch,
                                  "params": start.params,
                                  **where, "pid": os.getpid(), "time": time.time()}) + "\n")
