"""A lost head on a local Ray cluster (``ray.cluster_utils.Cluster``: a head and two worker
nodes): while a search trains through both workers, the head is SIGKILLed (GCS, raylet,
agents): the driver ends in seconds with one line saying how to go on (exit 3, no traceback),
the worker nodes' raylets end (``gcs_rpc_server_reconnect_timeout_s``, shortened to 10 s here)
and their trial workers with them; a new head and new workers, and ``minsearch resume RUN_DIR
--address NEWHEAD`` finishes the search: exact accounting, no finished trial trains again, the
lost trial continues from its checkpoint on a new worker, nothing left running on any node.

A lost worker node and a SIGKILLed driver (then ``resume --address``) are tested across
separate hosts (``tests/cluster/test_namespaces.py``, network namespaces): one search for each
cluster, since each costs a minute or more on 2 cores."""

from __future__ import annotations

import json
import time

import pytest

from minsearch.search.head import EXIT_HEAD_LOST
from tests.cluster.conftest import driver_env, start_search
from tests.cluster.harness import pid_alive, wait_until
from tests.search.accounting import (
    assert_exact_accounting,
    finished_records,
    training_victim,
    trainings,
)
from tests.search.conftest import session_processes

pytestmark = pytest.mark.slow

TRIALS = 4


def test_a_lost_head_then_a_new_one_and_resume(cluster, drivers, tmp_path):
    driver, run_dir = start_search(cluster, drivers, tmp_path, TRIALS, epochs=20)
    log, workers, out = cluster.trial_log, set(cluster.workers), tmp_path / "driver.log"
    victim = wait_until(lambda: driver.poll() is not None or training_victim(
        run_dir, log, workers), 240, "a trial with a checkpoint")
    assert driver.poll() is None, "the search ended before the head could be lost"
    done_at_loss = {r["trial_id"]: r for r in finished_records(run_dir)}
    raylets = cluster.kill_head()
    lost_at = time.monotonic()
    assert driver.wait(timeout=60) == EXIT_HEAD_LOST, out.read_text()[-3000:]
    said = out.read_text()
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
    assert by_id.loc[victim["trial_id"], "node"] in new_workers
    assert json.loads((run_dir / "search.json").read_text())["address"] == cluster.address

    # The victim trained again on a new worker, from its checkpoint; a trial finished before
    # the loss never trained again.
    runs = trainings(log)
    lost = [r for r in runs if r["trial_id"] == victim["trial_id"]]
    assert len(lost) == 2 and lost[1]["node"] in new_workers, lost
    assert lost[0]["start_epoch"] == 0 < lost[1]["start_epoch"], lost
    for trial_id in done_at_loss:
        assert sum(r["trial_id"] == trial_id for r in runs) == 1, trial_id
    assert {r["trial_id"] for r in runs} == set(frame["trial_id"])
    assert {r["node"] for r in runs} <= workers | new_workers
    assert [pid for sid in drivers.sessions for pid in session_processes(sid)] == []
    wait_until(lambda: not any(pid_alive(r["pid"]) for r in runs), 30, "trial workers to end")
