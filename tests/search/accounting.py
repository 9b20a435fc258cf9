"""Exact accounting of a finished search, checked the same way after every fault: N COMPLETE
trials with unique ids, N COMPLETE Optuna trials and none RUNNING (anything else a FAIL that
says why: an orphan, a redrawn duplicate, or a trial stopped by Ctrl-C/SIGTERM and told again
on resume), N finished MLflow child runs tagged with the node that ran them."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
from mlflow.tracking import MlflowClient


def finished_records(run_dir: Path) -> list[dict]:
    try:
        records = json.loads((run_dir / "trials.json").read_text())
    except (OSError, ValueError):
        return []
    return [r for r in records if r["state"] in ("COMPLETE", "FAILED")]


def trainings(log: Path) -> list[dict]:
    """Every training run the ``trial_log`` test plugin logged (trial, start epoch, node,
    pid, time)."""
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _driver_has_checkpoint(trial_dir: Path) -> bool:
    """Whether Ray Tune's driver has registered a checkpoint of the trial in ``trial_dir``: its
    ``result.json`` (written by the driver) holds two results with checkpoints. One is not
    enough: the driver logs a result, then asks the worker to save it, and registers the
    checkpoint when that answer comes (measured: a node lost in between restarted the trial
    from scratch); the worker trains on only once the save is registered."""
    try:
        lines = (trial_dir / "result.json").read_text().splitlines()
    except OSError:
        return False
    saved = 0
    for line in lines:
        try:
            saved += bool(json.loads(line).get("checkpoint_dir_name"))
        except ValueError:  # a line being written
            continue
    return saved >= 2


def training_victim(run_dir: Path, log: Path, nodes: set[str], key: str = "node",
                    since: float = 0.0) -> dict | None:
    """A training run on one of ``nodes`` (by ``key``: Ray node id, or ``ip``), started at
    ``since`` (Unix time) or later, whose trial has not finished and has a checkpoint the
    driver knows: a trial to lose a node under."""
    done = {r["trial_id"] for r in finished_records(run_dir)}
    for run in trainings(log):
        if run["trial_id"] in done or run[key] not in nodes or run["time"] < since:
            continue
        if any(_driver_has_checkpoint(d)
               for d in (run_dir / "tune").glob(f"run_trial_{run['trial_id']}_*")):
            return run
    return None


def assert_moved_after_a_loss(runs: list[dict], victim: dict, survivor: str, key: str,
                              others: set[str]) -> None:
    """The trial of ``victim`` (a training run) trained twice: from scratch where it was lost,
    then from its checkpoint on ``survivor`` (by ``key``: ``node`` or ``ip``); each trial in
    ``others`` trained once."""
    lost = [r for r in runs if r["trial_id"] == victim["trial_id"]]
    assert [r[key] for r in lost] == [victim[key], survivor], lost
    assert lost[0]["start_epoch"] == 0 < lost[1]["start_epoch"]
    for trial_id in others - {victim["trial_id"]}:
        assert sum(r["trial_id"] == trial_id for r in runs) == 1, trial_id


def assert_exact_accounting(run_dir: Path, trials: int) -> pd.DataFrame:
    """Check the run folder, the Optuna study and MLflow against each other; the results."""
    frame = pd.read_csv(run_dir / "results.csv", dtype={"trial_id": str, "node": str})
    assert len(frame) == trials and frame["trial_id"].is_unique, frame
    assert (frame["state"] == "COMPLETE").all(), frame[["trial_id", "state", "reason"]]
    assert frame["number"].tolist() == list(range(1, trials + 1))
    assert frame["node"].notna().all() and (frame["node"].str.len() > 0).all()

    study = optuna.load_study(study_name="minsearch",
                              storage=f"sqlite:///{run_dir.resolve()}/optuna.db")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == trials
    assert optuna.trial.TrialState.RUNNING not in states
    orphans = json.loads((run_dir / "search.json").read_text())["orphans"]
    stopped = study.user_attrs.get("minsearch_interrupted", {})  # Ctrl-C/SIGTERM, resumed
    for trial in study.trials:
        if trial.state != optuna.trial.TrialState.COMPLETE:
            assert trial.state == optuna.trial.TrialState.FAIL
            assert (str(trial.number) in orphans or str(trial.number) in stopped
                    or trial.user_attrs.get("minsearch_duplicate")), trial.number
    values = sorted(round(t.values[0], 9) for t in study.trials if t.values)
    assert values == sorted(round(a, 9) for a in frame["accuracy"])

    state = json.loads((run_dir / "mlflow.json").read_text())
    client = MlflowClient(state["tracking_uri"])
    children = client.search_runs([state["experiment_id"]],
                                  f"tags.`mlflow.parentRunId` = '{state['parent_run_id']}'")
    by_id = frame.set_index("trial_id")
    assert sorted(r.data.tags["minsearch.trial_id"] for r in children) == sorted(by_id.index)
    assert {r.info.status for r in children} == {"FINISHED"}
    for run in children:
        assert run.data.tags["node"] == by_id.loc[run.data.tags["minsearch.trial_id"], "node"]
    assert client.get_run(state["parent_run_id"]).info.status == "FINISHED"
    return frame
