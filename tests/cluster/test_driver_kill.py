"""The driver SIGKILLed while the cluster lives, then ``minsearch resume RUN_DIR --address``:
the search finishes on the same cluster with exact accounting, no finished trial trains again,
and nothing the killed driver started is left running on any node."""

from __future__ import annotations

import os
import signal

import pytest

from tests.cluster.conftest import driver_env, start_search
from tests.cluster.harness import pid_alive, wait_until
from tests.search.accounting import assert_exact_accounting, finished_records, trainings
from tests.search.conftest import session_processes

pytestmark = pytest.mark.slow

TRIALS = 6


def test_driver_killed_then_resumed_against_the_cluster(cluster, drivers, tmp_path):
    driver, run_dir = start_search(cluster, drivers, tmp_path, TRIALS, epochs=15)
    log = cluster.trial_log
    wait_until(lambda: len(finished_records(run_dir)) >= 2 or driver.poll() is not None, 240,
               "two finished trials")
    assert driver.poll() is None, "the search ended before it could be killed"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    done_before = {r["trial_id"]: r for r in finished_records(run_dir)}
    assert 2 <= len(done_before) < TRIALS
    # Ray ends a dead driver's job: its trial workers on every node go with it.
    workers_before = {r["pid"] for r in trainings(log)}
    wait_until(lambda: not any(pid_alive(pid) for pid in workers_before), 60,
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
    runs = trainings(log)
    for trial_id in done_before:  # never trained again
        assert sum(r["trial_id"] == trial_id for r in runs) == 1
    assert {r["trial_id"] for r in runs} == set(frame["trial_id"])
    assert set(frame["node"]) <= set(cluster.workers)
    assert [pid for sid in drivers.sessions for pid in session_processes(sid)] == []
    wait_until(lambda: not any(pid_alive(r["pid"]) for r in runs), 30, "trial workers to end")
