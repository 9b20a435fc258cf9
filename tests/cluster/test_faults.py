"""Faults on a local Ray cluster (``ray.cluster_utils.Cluster``: a head and two worker nodes,
the fast level of the multi-node tests), one 6-trial search through both:

- a worker node lost mid-trial (its trial worker and raylet SIGKILLed): the trial is retried on
  the surviving node from its last checkpoint;
- then, while a later trial trains, the head SIGKILLed (GCS, raylet, agents): the driver ends in
  seconds with one line saying how to go on (exit 3, no traceback), the surviving worker's
  raylet ends (``gcs_rpc_server_reconnect_timeout_s``, shortened to 10 s here) and its trial
  worker with it; a new head and new workers, and ``minsearch resume RUN_DIR --address
  NEWHEAD`` finishes the search.

Exact accounting at the end; no finished trial trains again; every trial records the node that
ran it; nothing the drivers started is left running on any node. A driver SIGKILLed while the
cluster lives, then ``resume --address``, is tested across separate hosts
(``tests/cluster/test_namespaces.py``, with a lost worker host too). One search for both faults
here: each search on this cluster costs about a minute on 2 cores."""

from __future__ import annotations

import json
import time

import pytest

from minsearch.search.head import EXIT_HEAD_LOST
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


def test_a_lost_worker_node_then_a_lost_head(cluster, drivers, tmp_path):
    driver, run_dir = start_search(cluster, drivers, tmp_path, TRIALS, epochs=20)
    log, workers, out = cluster.trial_log, set(cluster.workers), tmp_path / "driver.log"
    victim = wait_until(lambda: driver.poll() is not None or
                        training_victim(run_dir, log, workers), 240, "a trial with a checkpoint")
    assert driver.poll() is None, out.read_text()[-3000:]
    cluster.kill_node(victim["node"], [victim["pid"]])
    # SIGKILL is asynchronous: a worker in the middle of a disk write ('D') dies a moment later
    wait_until(lambda: not pid_alive(victim["pid"]), 15, "the killed trial worker to be gone")
    survivor = (workers - {victim["node"]}).pop()

    # The lost trial continues on the survivor; once it finished, the head is lost while a
    # later trial trains.
    wait_until(lambda: driver.poll() is not None or victim["trial_id"] in
               {r["trial_id"] for r in finished_records(run_dir)}, 300, "the lost trial")
    head_victim = wait_until(lambda: driver.poll() is not None or training_victim(
        run_dir, log, {survivor}), 240, "a later trial with a checkpoint")
    assert driver.poll() is None, "the search ended before the head could be lost"
    done_at_loss = {r["trial_id"]: r for r in finished_records(run_dir)}
    assert victim["trial_id"] in done_at_loss and len(done_at_loss) < TRIALS
    before = len(out.read_text())  # Ray Tune logged the node loss's trial error (a traceback)
    raylets = cluster.kill_head()
    lost_at = time.monotonic()
    assert driver.wait(timeout=60) == EXIT_HEAD_LOST, out.read_text()[-3000:]
    said = out.read_text()[before:]
    assert time.monotonic() - lost_at < 15 and "Traceback" not in said, said[-3000:]
    last = said.strip().splitlines()[-1]
    assert last.startswith("minsearch: error: the Ray head at") and "stopped answering" in last
    assert f"minsearch resume {run_dir} --address" in last and "ray start --head" in last
    assert session_processes(driver.pid) == []
    # The worker nodes' raylets give up on the head; their trial workers end with them.
    wait_until(lambda: not any(pid_alive(pid) for pid in raylets), 40,
               "the worker nodes' raylets to give up on the lost head")
    wait_until(lambda: not any(pid_alive(r["pid"]) for r in trainings(log)), 15,
               "the lost cluster's trial workers to end")
    stale = cluster.rejoin(2)  # only the raylets' agents were left (`ray stop` ends them)
    assert set(stale) <= {"ray::DashboardAgent", "ray::RuntimeEnvAgent"}, stale
    new_workers = set(cluster.workers)
    code, output = drivers.run("resume", str(run_dir), "--address", cluster.address, "--quiet",
                               env=driver_env())
    assert code == 0, output[-3000:]
    frame = assert_exact_accounting(run_dir, TRIALS)
    by_id = frame.set_index("trial_id")
    for trial_id, before in done_at_loss.items():  # kept as they were
        assert by_id.loc[trial_id, "accuracy"] == pytest.approx(before["objectives"]["accuracy"])
        assert by_id.loc[trial_id, "node"] == before["node"]
    assert by_id.loc[victim["trial_id"], "node"] == survivor
    assert by_id.loc[head_victim["trial_id"], "node"] in new_workers
    assert json.loads((run_dir / "search.json").read_text())["address"] == cluster.address

    # The node-loss victim trained twice (from scratch where it was lost, then from its
    # checkpoint on the survivor); the head-loss victim again on a new worker, from its
    # checkpoint; a trial in flight at the head loss may train again; every other trial once.
    runs = trainings(log)
    head_runs = [r for r in runs if r["trial_id"] == head_victim["trial_id"]
                 and r["time"] >= head_victim["time"]]
    assert len(head_runs) == 2 and head_runs[1]["node"] in new_workers, head_runs
    assert head_runs[1]["start_epoch"] > 0, head_runs
    in_flight = {r["trial_id"] for r in runs if r["node"] == survivor} - set(done_at_loss)
    assert_moved_after_a_loss(runs, victim, survivor, "node",
                              set(frame["trial_id"]) - in_flight)
    assert {r["trial_id"] for r in runs} == set(frame["trial_id"])
    assert {r["node"] for r in runs} <= workers | new_workers
    assert set(frame["node"]) <= workers | new_workers
    assert [pid for sid in drivers.sessions for pid in session_processes(sid)] == []
    wait_until(lambda: not any(pid_alive(r["pid"]) for r in runs), 30, "trial workers to end")
