"""Real separate hosts: a Ray head and two worker nodes, each in its own network namespace
(``ray start``, as users start a cluster), the driver on the head's host, the run folder on a
path every node sees. A 6-trial search spreads over both workers; one worker host loses every
process (SIGKILL) while a trial trains on it; the trial finishes on the other host from its
checkpoint; then the driver is SIGKILLed and ``minsearch resume --address`` finishes the
search. Exact accounting; no process or namespace left.

Skipped only where network namespaces cannot be made (not Linux, no ``ip``, not root)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.cluster.conftest import search_inputs
from tests.cluster.harness import pid_alive, wait_until
from tests.cluster.namespaces import NamespaceCluster, cannot_make_namespaces
from tests.search.accounting import (
    assert_exact_accounting,
    assert_moved_after_a_loss,
    finished_records,
    training_victim,
    trainings,
)
from tests.search.plugins.trial_log import VARIABLE as TRIAL_LOG

pytestmark = pytest.mark.slow

TRIALS = 6
WHY_NOT = cannot_make_namespaces()


@pytest.fixture
def hosts(tmp_path):
    if WHY_NOT:
        pytest.skip(f"network namespaces cannot be made here: {WHY_NOT}")
    log = tmp_path / "trainings.jsonl"
    cluster = NamespaceCluster(workers=2, env={TRIAL_LOG: str(log)})
    cluster.trial_log = log
    try:
        cluster.start()
        yield cluster
    finally:
        left = cluster.teardown()
    assert not left, f"namespaces left: {left}"


def _driver(hosts, *args, log):
    """``minsearch ARGS`` on the head's host, in its own session."""
    return hosts.run_in(hosts.head, sys.executable, "-m", "minsearch.cli.main", *args,
                        stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                        start_new_session=True)


def test_search_over_namespaced_hosts_survives_a_lost_host_and_a_killed_driver(hosts,
                                                                               tmp_path):
    task, space = search_inputs(tmp_path, TRIALS, epochs=20)
    run_dir, log, out = tmp_path / "run", hosts.trial_log, tmp_path / "driver.log"
    driver = _driver(hosts, "search", str(task), "--space", str(space), "--out", str(run_dir),
                     "--address", hosts.address, "--quiet", log=out)
    worker_ips = {hosts.ip_of(w): w for w in hosts.workers}
    victim = wait_until(lambda: driver.poll() is not None or
                        training_victim(run_dir, log, set(worker_ips), key="ip"), 300,
                        "a trial with a checkpoint on a worker host")
    assert driver.poll() is None, out.read_text()[-3000:]
    killed = hosts.kill(worker_ips[victim["ip"]])
    assert victim["pid"] in killed
    survivor = (set(worker_ips) - {victim["ip"]}).pop()

    # The lost trial continues on the survivor; once it finished, the driver is killed too.
    wait_until(lambda: driver.poll() is not None or victim["trial_id"] in
               {r["trial_id"] for r in finished_records(run_dir)}, 300, "the lost trial")
    assert driver.poll() is None, "the search ended before the driver could be killed"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    done_before = {r["trial_id"] for r in finished_records(run_dir)}
    wait_until(lambda: not any(pid_alive(r["pid"]) for r in trainings(log)), 60,
               "the killed driver's trial workers to end")

    resumed = _driver(hosts, "resume", str(run_dir), "--address", hosts.address, "--quiet",
                      log=tmp_path / "resume.log")
    assert resumed.wait(timeout=400) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    frame = assert_exact_accounting(run_dir, TRIALS)

    runs = trainings(log)
    assert_moved_after_a_loss(runs, victim, survivor, "ip", done_before)  # the others: once
    assert {r["ip"] for r in runs} == set(worker_ips)  # both hosts ran trials
    assert set(frame["node_ip"]) <= set(worker_ips)
    wait_until(lambda: not any(pid_alive(r["pid"]) for r in runs), 30, "trial workers to end")
