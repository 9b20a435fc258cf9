"""Resume after SIGKILL: the driver runs as a subprocess in its own session, is killed with
SIGKILL mid-search, and ``minsearch resume`` finishes with exact trial accounting."""

from __future__ import annotations

import json
import os
import signal
import time

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.search.conftest import (
    TINY_SPACE,
    TINY_TASK,
    listening_addresses,
    session_processes,
    write_yaml,
)

pytestmark = pytest.mark.slow

TRIALS = 6


def finished(run_dir) -> list[dict]:
    try:
        records = json.loads((run_dir / "trials.json").read_text())
    except (OSError, ValueError):
        return []
    return [r for r in records if r["state"] in ("COMPLETE", "FAILED")]


def test_kill_9_then_resume_finishes_every_trial_exactly_once(drivers, tmp_path):
    task = write_yaml(tmp_path / "task.yaml", dict(TINY_TASK, epochs=2, checkpoint_seconds=0))
    space = write_yaml(tmp_path / "space.yaml", dict(
        TINY_SPACE, trials=TRIALS, plugins=["tests.search.plugins.trial_log"]))
    run_dir, log = tmp_path / "run", tmp_path / "trainings.jsonl"
    env = {"MINSEARCH_TEST_TRIAL_LOG": str(log)}
    driver = drivers.start("search", str(task), "--space", str(space), "--out", str(run_dir),
                           "--quiet", env=env, log=tmp_path / "driver.log")
    deadline = time.monotonic() + 300
    while len(finished(run_dir)) < 2 and driver.poll() is None:
        assert time.monotonic() < deadline, (tmp_path / "driver.log").read_text()[-2000:]
        time.sleep(0.1)
    assert driver.poll() is None, "the search ended before it could be killed"
    # Local Ray listens on loopback only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0).
    listening = listening_addresses(session_processes(driver.pid))
    assert listening and listening <= {"127.0.0.1", "::1"}, listening
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    done_before = {r["trial_id"]: r for r in finished(run_dir)}
    assert 2 <= len(done_before) < TRIALS

    code, output = drivers.run("resume", str(run_dir), "--quiet", env=env)
    assert code == 0, output[-3000:]
    assert "Pareto front" in output

    # Ray / results: exactly TRIALS trials, all complete, each once.
    frame = pd.read_csv(run_dir / "results.csv")
    assert len(frame) == TRIALS and frame["trial_id"].is_unique
    assert (frame["state"] == "COMPLETE").all()
    assert frame["number"].tolist() == list(range(1, TRIALS + 1))
    by_id = frame.set_index("trial_id")
    for trial_id, before in done_before.items():  # finished before the kill: kept as they were
        assert by_id.loc[trial_id, "accuracy"] == pytest.approx(before["objectives"]["accuracy"])

    # None run twice: a trial finished before the kill never trained again; a trial that was
    # running trained at most once from scratch plus once from its last epoch checkpoint.
    trainings = [json.loads(line) for line in log.read_text().splitlines()]
    for trial_id in done_before:
        assert sum(t["trial_id"] == trial_id for t in trainings) == 1
    assert {t["trial_id"] for t in trainings} == set(frame["trial_id"])

    # Optuna: TRIALS complete trials; anything else was asked but never run, and says why:
    # an orphan of the kill (listed in search.json with its reason), or a repeated genome
    # that was redrawn (user attribute).
    study = optuna.load_study(study_name="minsearch",
                              storage=f"sqlite:///{run_dir.resolve()}/optuna.db")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == TRIALS
    others = [t for t in study.trials if t.state != optuna.trial.TrialState.COMPLETE]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in others)
    orphans = json.loads((run_dir / "search.json").read_text())["orphans"]
    assert all(reason.startswith("orphaned") for reason in orphans.values())
    assert all(str(t.number) in orphans or t.user_attrs.get("minsearch_duplicate")
               for t in others)
    assert len(orphans) <= 2
    values = sorted(round(t.values[0], 9) for t in study.trials if t.values)
    assert values == sorted(round(a, 9) for a in frame["accuracy"])

    # MLflow: one finished child run per trial, no duplicates, no orphans, nothing RUNNING.
    state = json.loads((run_dir / "mlflow.json").read_text())
    client = MlflowClient(state["tracking_uri"])
    children = client.search_runs([state["experiment_id"]],
                                  f"tags.`mlflow.parentRunId` = '{state['parent_run_id']}'")
    assert sorted(r.data.tags["minsearch.trial_id"] for r in children) == sorted(frame.trial_id)
    assert {r.info.status for r in children} == {"FINISHED"}
    assert client.get_run(state["parent_run_id"]).info.status == "FINISHED"

    # No Ray process outlives the killed driver or the resumed search.
    time.sleep(1)
    assert [pid for sid in drivers.sessions for pid in session_processes(sid)] == []


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    from minsearch.cli.main import main

    assert main(["resume", str(tmp_path)]) == 2
    assert "not a minsearch run folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written
