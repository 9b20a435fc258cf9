"""Resume after SIGKILL: the driver runs as a subprocess in its own session, is killed with
SIGKILL mid-search, and ``minsearch resume`` finishes with exact trial accounting."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.search.accounting import assert_exact_accounting, finished_records
from tests.search.conftest import (
    TINY_SPACE,
    TINY_TASK,
    listening_addresses,
    session_processes,
    write_yaml,
)

pytestmark = pytest.mark.slow

TRIALS = 6


def test_kill_9_then_resume_finishes_every_trial_exactly_once(drivers, tmp_path):
    task = write_yaml(tmp_path / "task.yaml", dict(TINY_TASK, epochs=2, checkpoint_seconds=0,
                                                   schedule="cosine", warmup=0.2))
    space = write_yaml(tmp_path / "space.yaml", dict(
        TINY_SPACE, trials=TRIALS, plugins=["tests.search.plugins.trial_log"]))
    run_dir, log = tmp_path / "run", tmp_path / "trainings.jsonl"
    env = {"MINSEARCH_TEST_TRIAL_LOG": str(log)}
    driver = drivers.start("search", str(task), "--space", str(space), "--out", str(run_dir),
                           "--quiet", env=env, log=tmp_path / "driver.log")
    deadline = time.monotonic() + 300
    while len(finished_records(run_dir)) < 2 and driver.poll() is None:
        assert time.monotonic() < deadline, (tmp_path / "driver.log").read_text()[-2000:]
        time.sleep(0.1)
    assert driver.poll() is None, "the search ended before it could be killed"
    # Local Ray listens on loopback only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0).
    listening = listening_addresses(session_processes(driver.pid))
    assert listening and listening <= {"127.0.0.1", "::1"}, listening
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    done_before = {r["trial_id"]: r for r in finished_records(run_dir)}
    assert 2 <= len(done_before) < TRIALS

    code, output = drivers.run("resume", str(run_dir), "--quiet", env=env)
    assert code == 0, output[-3000:]
    assert "Pareto front" in output

    # Ray / results, Optuna and MLflow: exactly TRIALS trials, all complete, each once, N
    # COMPLETE Optuna trials (anything else a FAIL that says why: an orphan of the kill or a
    # redrawn duplicate), N finished MLflow child runs.
    frame = assert_exact_accounting(run_dir, TRIALS)
    by_id = frame.set_index("trial_id")
    for trial_id, before in done_before.items():  # finished before the kill: kept as they were
        assert by_id.loc[trial_id, "accuracy"] == pytest.approx(before["objectives"]["accuracy"])
    assert len(json.loads((run_dir / "search.json").read_text())["orphans"]) <= 2

    # None run twice: a trial finished before the kill never trained again; a trial that was
    # running trained at most once from scratch plus once from its last epoch checkpoint.
    trainings = [json.loads(line) for line in log.read_text().splitlines()]
    for trial_id in done_before:
        assert sum(t["trial_id"] == trial_id for t in trainings) == 1
    assert {t["trial_id"] for t in trainings} == set(frame["trial_id"])

    # No Ray process outlives the killed driver or the resumed search.
    time.sleep(1)
    assert [pid for sid in drivers.sessions for pid in session_processes(sid)] == []


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    from minsearch.cli.main import main

    assert main(["resume", str(tmp_path)]) == 2
    assert "not a minsearch run folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written
