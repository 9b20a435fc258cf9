"""Stopping a driver and running two at once: Ctrl-C and SIGTERM mid-run, two resumes started
together, a resume while the first driver trains its parent, a diverging parent.

One search (the module fixture ``stops``) goes through every stop in turn, each driver a
subprocess in its own session: ``search`` stopped by Ctrl-C (SIGINT to its process group), two
``resume`` started together (one refused), the one that runs stopped by SIGTERM, and a last
``resume`` to the end. The books (results.csv, trials.json, the Optuna study, MLflow,
search.json) are read after each stop; each test checks one stage.
"""

from __future__ import annotations

import json
import os
import signal
import time

import optuna
import pandas as pd
import pytest

from minsearch.cli.main import main
from minsearch.search.finish import HELD_REASON
from minsearch.search.lock import lock_holder
from tests.search.conftest import TINY_SPACE, TINY_TASK, Drivers, session_processes, write_yaml

pytestmark = pytest.mark.slow

TRIALS = 4
BUSY = "is being run by another minsearch process (pid {pid}); wait for it or stop it"
CRASH_DUMP = ("SIGTERM received", "logging.cc", "Traceback", "Aborted")


def records(run) -> list[dict]:
    try:
        return json.loads((run / "trials.json").read_text())
    except (OSError, ValueError):
        return []


def finished(run) -> set[str]:
    return {r["trial_id"] for r in records(run) if r["state"] in ("COMPLETE", "FAILED")}


def baseline_finished(run) -> bool:
    """The baseline ended: from then on no finished trial is held, untold (see finish.py)."""
    return any(r["baseline"] for r in records(run) if r["trial_id"] in finished(run))


def trainings(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def poll(condition, proc=None, timeout: float = 300) -> None:
    """Wait for ``condition()`` (while the driver ``proc`` runs)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, f"the driver exited ({proc.returncode})"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def ended(proc, log, timeout: float = 120) -> dict:
    """The exit code and output of ``proc``, and what its session left running."""
    proc.wait(timeout=timeout)
    deadline = time.monotonic() + 10
    while session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {"code": proc.returncode, "output": log.read_text(),
            "left": session_processes(proc.pid)}


class Books:
    """What each record of the run folder says about the trials."""

    def __init__(self, run) -> None:
        from mlflow.tracking import MlflowClient

        self.run = run
        self.mlflow = json.loads((run / "mlflow.json").read_text())
        self.client = MlflowClient(self.mlflow["tracking_uri"])

    def read(self) -> dict:
        run = self.run
        frame = pd.read_csv(run / "results.csv", dtype={"trial_id": str})
        settings = json.loads((run / "search.json").read_text())
        study = optuna.load_study(study_name="minsearch",
                                  storage=f"sqlite:///{run.resolve()}/optuna.db")
        children = self.client.search_runs(
            [self.mlflow["experiment_id"]],
            f"tags.`mlflow.parentRunId` = '{self.mlflow['parent_run_id']}'")
        complete = frame[frame["state"] == "COMPLETE"]
        return {
            "status": settings["status"], "orphans": settings["orphans"],
            "results": dict(zip(frame["trial_id"], frame["state"], strict=True)),
            "reasons": dict(zip(frame["trial_id"], frame["reason"].astype(object).fillna(""),
                                strict=True)),
            "numbers": frame["number"].tolist(),
            "records": {r["trial_id"]: r["state"]
                        for r in json.loads((run / "trials.json").read_text())},
            "optuna": [(t.number, t.state.name, dict(t.user_attrs)) for t in study.trials],
            "interrupted": dict(study.user_attrs.get("minsearch_interrupted", {})),
            "values": sorted(round(t.values[0], 9) for t in study.trials if t.values),
            "accuracy": sorted(round(a, 9) for a in complete["accuracy"]),
            "children": {r.data.tags["minsearch.trial_id"]: (r.info.status,
                                                             r.data.tags.get("state"))
                         for r in children},
            "parent": self.client.get_run(self.mlflow["parent_run_id"]).info.status,
        }


@pytest.fixture(scope="module")
def stops(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stops")
    task = write_yaml(tmp / "task.yaml", dict(TINY_TASK, epochs=2, checkpoint_seconds=0,
                                              max_samples=300))
    space = write_yaml(tmp / "space.yaml", dict(
        TINY_SPACE, trials=TRIALS,
        plugins=["tests.search.plugins.trial_log", "tests.search.plugins.slow_start"]))
    run, log = tmp / "run", tmp / "trainings.jsonl"
    env = {"MINSEARCH_TEST_TRIAL_LOG": str(log)}
    drivers, stages = Drivers(tmp), {}

    def in_flight(done: int, started: int):
        """More trials finished than ``done``, and one started since ``started`` runs."""
        def check() -> bool:
            new_done = len(finished(run)) - done
            return new_done >= 1 and len(trainings(log)) - started > new_done
        return check

    try:
        # 1. Ctrl-C: SIGINT to the search's process group while a trial trains. The baseline
        # starts 8 s late, so the searcher holds a trial that ended before it (told to Optuna
        # only after the baseline) when the Ctrl-C comes.
        search = drivers.start("search", str(task), "--space", str(space), "--out", str(run),
                               "--quiet", env=dict(env, MINSEARCH_TEST_BASELINE_SLEEP="8"),
                               log=tmp / "search.log")
        poll(in_flight(0, 0), search)
        os.killpg(search.pid, signal.SIGINT)
        stages["sigint"] = ended(search, tmp / "search.log")
        books = Books(run)
        stages["sigint"].update(books=books.read(), done=finished(run),
                                trained=len(trainings(log)))

        # 2. Two resumes started together: one runs, the other is refused.
        started = len(trainings(log))
        pair = [drivers.start("resume", str(run), "--quiet", env=env, log=tmp / f"resume-{i}.log")
                for i in range(2)]
        poll(lambda: any(p.poll() is not None for p in pair), timeout=120)
        refused = next(i for i, p in enumerate(pair) if p.poll() is not None)
        winner = pair[1 - refused]
        stages["pair"] = dict(ended(pair[refused], tmp / f"resume-{refused}.log"),
                              winner=winner.pid)

        # 3. SIGTERM to the resume that runs, while a trial trains, once the baseline ended.
        # Before that, a trial that ended (the one held at the Ctrl-C, already COMPLETE for Ray
        # and in trials.json as soon as the resume starts) is still held, untold, and the
        # SIGTERM would make it INTERRUPTED again.
        def told_and_training() -> bool:
            since = {t["trial_id"] for t in trainings(log)[started:]}
            return baseline_finished(run) and bool(since - finished(run))

        poll(told_and_training, winner)
        os.kill(winner.pid, signal.SIGTERM)
        stages["sigterm"] = ended(winner, tmp / f"resume-{1 - refused}.log")
        stages["sigterm"].update(books=books.read(), done=finished(run),
                                 trained=len(trainings(log)))

        # 4. A last resume finishes the search.
        code, output = drivers.run("resume", str(run), "--quiet", env=env)
        stages["final"] = {"code": code, "output": output, "books": books.read(),
                           "trainings": trainings(log),
                           "left": [p for s in drivers.sessions for p in session_processes(s)]}
    finally:
        drivers.cleanup()
    return stages


def assert_stopped_cleanly(stage: dict, signame: str, code: int) -> dict:
    """Exit code, one line saying so, no crash dump, no process left; one state everywhere."""
    assert stage["code"] == code, stage["output"][-3000:]
    last = stage["output"].strip().splitlines()[-1]
    assert f"interrupted by {signame}" in last and "minsearch resume" in last
    assert not any(text in stage["output"] for text in CRASH_DUMP), stage["output"][-3000:]
    assert stage["left"] == []
    books = stage["books"]
    assert books["status"] == "interrupted"
    assert books["records"] == books["results"]  # trials.json says what results.csv says
    states = set(books["results"].values())
    assert "INTERRUPTED" in states and not states & {"RUNNING", "PENDING"}
    stopped = {t for t, s in books["results"].items() if s == "INTERRUPTED"}
    assert set(books["interrupted"].values()) >= stopped  # Optuna has them as FAIL, listed
    optuna_states = [state for _, state, _ in books["optuna"]]
    assert "RUNNING" not in optuna_states
    assert optuna_states.count("COMPLETE") == list(books["results"].values()).count("COMPLETE")
    assert books["values"] == books["accuracy"]
    assert books["parent"] == "KILLED"
    for trial_id, (status, state) in books["children"].items():
        expected = "KILLED" if trial_id in stopped else "FINISHED"
        assert status == expected and state == books["results"][trial_id], trial_id
    return books


def test_ctrl_c_stops_the_search_with_one_state_everywhere(stops):
    books = assert_stopped_cleanly(stops["sigint"], "SIGINT", 130)
    # The trial that ended before the baseline was held, untold: interrupted everywhere too.
    held = [t for t, reason in books["reasons"].items() if reason == HELD_REASON]
    assert held and all(books["results"][t] == "INTERRUPTED" for t in held)


def test_two_resumes_started_together_one_runs(stops):
    refused = stops["pair"]
    assert refused["code"] == 2, refused["output"][-3000:]
    [line] = refused["output"].strip().splitlines()
    assert line.startswith("minsearch resume: error: ")
    assert BUSY.format(pid=refused["winner"]) in line
    assert refused["left"] == []


def test_sigterm_stops_like_ctrl_c(stops):
    books = assert_stopped_cleanly(stops["sigterm"], "SIGTERM", 143)
    # The trials stopped by Ctrl-C went on: they are not interrupted twice.
    assert len(stops["sigterm"]["done"]) > len(stops["sigint"]["done"])
    assert books["results"].keys() >= stops["sigint"]["books"]["results"].keys()


def test_resume_after_the_stops_accounts_exactly(stops):
    final = stops["final"]
    assert final["code"] == 0, final["output"][-3000:]
    assert final["left"] == []
    books = final["books"]
    assert books["status"] == "finished"
    # results.csv: exactly TRIALS trials, all complete, in order.
    assert list(books["results"].values()) == ["COMPLETE"] * TRIALS
    assert books["numbers"] == list(range(1, TRIALS + 1))
    # Optuna: TRIALS complete, nothing running; every other trial says why it is not.
    assert [s for _, s, _ in books["optuna"]].count("COMPLETE") == TRIALS
    assert books["values"] == books["accuracy"]
    for number, state, attrs in books["optuna"]:
        if state != "COMPLETE":
            assert state == "FAIL" and (attrs.get("minsearch_duplicate")
                                        or str(number) in books["interrupted"]
                                        or str(number) in books["orphans"]), number
    told = sorted(a["minsearch_trial_id"] for _, s, a in books["optuna"] if s == "COMPLETE")
    assert told == sorted(books["results"])  # one COMPLETE Optuna trial per trial
    # MLflow: one finished child run per trial.
    assert books["children"] == {t: ("FINISHED", "COMPLETE") for t in books["results"]}
    assert books["parent"] == "FINISHED"
    # A trial finished before a stop never trained again.
    for stage in ("sigint", "sigterm"):
        later = final["trainings"][stops[stage]["trained"]:]
        assert not {t["trial_id"] for t in later} & stops[stage]["done"], stage


def test_resume_during_parent_training_is_refused(drivers, tmp_path, capsys):
    task = write_yaml(tmp_path / "task.yaml", dict(TINY_TASK, parent_epochs=1000))
    space = write_yaml(tmp_path / "space.yaml", TINY_SPACE)
    run = tmp_path / "run"
    first = drivers.start("search", str(task), "--space", str(space), "--out", str(run),
                          "--quiet", log=tmp_path / "search.log")
    poll(lambda: (run / "search.json").is_file() and lock_holder(run) == first.pid, first)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and BUSY.format(pid=first.pid) in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in run.iterdir()) == sorted(before)  # nothing added
    # Ctrl-C while the parent trains (no Ray yet): the search stops at once, resumable.
    os.killpg(first.pid, signal.SIGINT)
    stage = ended(first, tmp_path / "search.log", timeout=60)
    assert stage["code"] == 130 and stage["left"] == [], stage["output"][-3000:]
    assert json.loads((run / "search.json").read_text())["status"] == "interrupted"


def test_a_diverging_parent_fails_the_search_in_one_line(tmp_path, capsys):
    task = write_yaml(tmp_path / "task.yaml", dict(TINY_TASK, lr=1e6, max_samples=200))
    space = write_yaml(tmp_path / "space.yaml", TINY_SPACE)
    run = tmp_path / "run"
    assert main(["search", str(task), "--space", str(space), "--out", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minsearch search: error: The parent diverged")
    assert "`lr: 1e+06`" in err and "lower it" in err
    settings = json.loads((run / "search.json").read_text())
    assert settings["status"] == "failed" and "diverged" in settings["reason"]
    assert not (run / "mlflow.db").exists()  # tracking never started: no run left RUNNING
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["resume", str(run), "--quiet"]) == 2
    assert "failed" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
