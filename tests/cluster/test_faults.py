"""Faults on a local Ray cluster (``ray.cluster_utils.Cluster``: a head and two worker nodes),
one 6-trial search through both, as the namespace test does on separate hosts:

- a worker node lost mid-trial (its trial worker and raylet SIGKILLed): the trial is retried on
  the surviving node from its last checkpoint;
- then the driver SIGKILLed while the cluster lives: Ray ends its trial workers on every node,
  and ``minsearch resume RUN_DIR --address`` finishes the search on the same cluster.

Exact accounting at the end; no finished trial trains again; every trial records the node that
ran it; nothing the drivers started is left running on any node. (One search for both faults:
each search on this cluster costs about a minute on 2 cores.)"""

from __future__ import annotations

import os
import signal

import pytest

from tests.cluster.conftest import driver_env, start_search
from tests.cluster.harness import pid_alive, wait_until
from tests.search.accounting import (
    assert_exact_accounting,
    assert_moved_after_a_loss,
    finished_records,
    training_victim,
    trainings,
)
from tests.search.conftest import session_processes

pytestmark = pytest.mark.slow

TRIALS = 6


def test_a_lost_worker_node_then_a_killed_driver(cluster, drivers, tmp_path):
    driver, run_dir = start_search(cluster, drivers, tmp_path, TRIALS, epochs=20)
    log, workers = cluster.trial_log, set(cluster.workers)
    out = tmp_path / "driver.log"
    victim = wait_until(lambda: driver.poll() is not None or
                        training_victim(run_dir, log, workers), 240, "a trial with a checkpoint")
    assert driver.poll() is None, out.read_text()[-3000:]
    cluster.kill_node(victim["node"], [victim["pid"]])
    # SIGKILL is asynchronous: a worker in the middle of a disk write ('D') dies a moment later
    wait_until(lambda: not pid_alive(victim["pid"]), 15, "the killed trial worker to be gone")
    survivor = (workers - {victim["node"]}).pop()

    # The lost trial continues on the survivor; once it finished, the driver is killed.
    wait_until(lambda: driver.poll() is not None or victim["trial_id"] in
               {r["trial_id"] for r in finished_records(run_dir)}, 300, "the lost trial")
    assert driver.poll() is None, "the search ended before the driver could be killed"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    done_before = {r["trial_id"]: r for r in finished_records(run_dir)}
    assert victim["trial_id"] in done_before and len(done_before) < TRIALS
    # Ray ends a dead driver's job: its trial workers on every node go with it.
    wait_until(lambda: not any(pid_alive(r["pid"]) for r in trainings(log)), 60,
               "the killed driver's trial workers to end")
    assert session_processes(driver.pid) == []

    code, output = drivers.run("resume", str(run_dir), "--address", cluster.address, "--quiet",
                               env=driver_env())
    assert code == 0, output[-3000:]
    frame = assert_exact_accounting(run_dir, TRIALS)
    by_id = frame.set_index("trial_id")
    for trial_id, before in done_before.items():  # finished before the kill: kept as they were
        assert by_id.loc[trial_id, "accuracy"] == pytest.approx(before["objectives"]["accuracy"])
        assert by_id.loc[trial_id, "node"] == before["node"]
    assert by_id.loc[victim["trial_id"], "node"] == survivor

    # The lost trial trained twice (from scratch where it was lost, then from its checkpoint
    # on the survivor); every other trial once, finished before the kill or not.
    runs = trainings(log)
    assert_moved_after_a_loss(runs, victim, survivor, "node", set(frame["trial_id"]))
    assert {r["trial_id"] for r in runs} == set(frame["trial_id"])
    assert {r["node"] for r in runs} <= workers and set(frame["node"]) <= workers
    assert [pid for sid in drivers.sessions for pid in session_processes(sid)] == []
    wait_until(lambda: not any(pid_alive(r["pid"]) for r in runs), 30, "trial workers to end")
