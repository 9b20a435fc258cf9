"""A worker node lost mid-trial: a 6-trial search over two worker nodes of a local Ray cluster
(``ray.cluster_utils.Cluster``); while a trial trains, its node's worker and raylet are
SIGKILLed. The trial is retried on the surviving node from its last checkpoint and the search
ends with exact accounting; every trial records the node that ran it."""

from __future__ import annotations

import pytest

from tests.cluster.conftest import start_search
from tests.cluster.harness import pid_alive, wait_until
from tests.search.accounting import (
    assert_exact_accounting,
    assert_moved_after_a_loss,
    training_victim,
    trainings,
)
from tests.search.conftest import session_processes

pytestmark = pytest.mark.slow

TRIALS = 6


def test_a_worker_node_killed_mid_trial(cluster, drivers, tmp_path):
    driver, run_dir = start_search(cluster, drivers, tmp_path, TRIALS, epochs=20)
    log, workers = cluster.trial_log, set(cluster.workers)
    victim = wait_until(lambda: driver.poll() is not None or
                        training_victim(run_dir, log, workers), 240, "a trial with a checkpoint")
    assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
    cluster.kill_node(victim["node"], [victim["pid"]])
    # SIGKILL is asynchronous: a worker in the middle of a disk write ('D') dies a moment later
    wait_until(lambda: not pid_alive(victim["pid"]), 15, "the killed trial worker to be gone")
    survivor = (workers - {victim["node"]}).pop()

    assert driver.wait(timeout=300) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    frame = assert_exact_accounting(run_dir, TRIALS)

    # The lost trial trained twice: from scratch on the killed node, then from its checkpoint
    # on the survivor, which finished it; every other trial trained once.
    runs = trainings(log)
    assert_moved_after_a_loss(runs, victim, survivor, "node", set(frame["trial_id"]))
    assert frame.set_index("trial_id").loc[victim["trial_id"], "node"] == survivor
    assert {r["node"] for r in runs} == workers  # both nodes ran trials before the loss
    assert set(frame["node"]) <= workers

    # Nothing left: the driver's session is empty and no trial worker outlives the search.
    assert session_processes(driver.pid) == []
    wait_until(lambda: not any(pid_alive(r["pid"]) for r in runs), 30, "trial workers to end")
    cluster.ensure_workers(2)  # the next test starts with two workers again
