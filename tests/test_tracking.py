"""MLflow tracking: parent and nested child runs, found again on resume, orphans removed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from minsearch.search.run_dir import RunDir
from minsearch.tracking import (
    PARENT_TAG,
    TRIAL_TAG,
    SearchTracker,
    clean_key,
    ui_command,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module (creating MLflow's tables takes seconds)."""
    return RunDir(tmp_path_factory.mktemp("store")).tracking.default_uri


@pytest.fixture
def tracker(tmp_path, store):
    t = SearchTracker(RunDir(tmp_path).tracking, store)
    t.start_search("search-test", {"sampler": "nsga2", "trials": 3})
    return t


def children(t: SearchTracker, deleted: bool = False):
    view = 3 if deleted else 1  # ViewType.ALL / ACTIVE_ONLY
    return MlflowClient(t.tracking_uri).search_runs(
        [t.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{t.parent_id}'",
        run_view_type=view)


def test_default_store_is_sqlite_in_the_run_folder(tmp_path):
    files = RunDir(tmp_path).tracking
    tracker = SearchTracker(files)
    assert tracker.tracking_uri == files.default_uri == f"sqlite:///{files.store.resolve()}"
    assert files.store.is_file() and files.store.parent == tmp_path
    experiment = MlflowClient(tracker.tracking_uri).get_experiment(tracker.experiment_id)
    assert experiment.artifact_location.startswith(files.artifacts.resolve().as_uri())


def test_child_runs_carry_params_metrics_and_end_state(tracker):
    run_id = tracker.trial_run("t1", {"norm@blocks.0": "dyt"})
    tracker.log_metrics("t1", {"val_accuracy": 0.5}, step=1)
    tracker.log_metrics("t1", {"val_accuracy": 0.7}, step=2)
    tracker.end_trial("t1", "COMPLETE", {"accuracy": 0.8}, {"corruption/blur@1": 0.6},
                      genome='{"blocks.0.norm1": "dyt"}')
    run = MlflowClient(tracker.tracking_uri).get_run(run_id)
    assert run.data.params == {"norm/blocks.0": "dyt"}
    assert run.data.tags[PARENT_TAG] == tracker.parent_id
    assert run.data.tags[TRIAL_TAG] == "t1"
    assert run.data.metrics["accuracy"] == 0.8
    assert run.data.metrics["corruption/blur/1"] == 0.6
    history = MlflowClient(tracker.tracking_uri).get_metric_history(run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.7)]
    assert run.info.status == "FINISHED"


def test_failed_trial_run_keeps_its_reason(tracker):
    run_id = tracker.trial_run("t2", {})
    tracker.end_trial("t2", "FAILED", {}, {}, reason="Diverged: loss became nan")
    run = MlflowClient(tracker.tracking_uri).get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"] == "Diverged: loss became nan"


def test_resume_reopens_runs_instead_of_duplicating(tmp_path, tracker):
    first = tracker.trial_run("t1", {"norm": "dyt"})
    parent = tracker.parent_id
    resumed = SearchTracker(RunDir(tmp_path).tracking)  # a new driver: URI from the state file
    assert resumed.start_search("search-test", {}) == parent
    assert resumed.trial_run("t1", {"norm": "dyt"}) == first
    state = RunDir(tmp_path).tracking.state
    state.write_text(state.read_text().replace('"t1"', '"gone"'))  # mapping lost t1
    again = SearchTracker(RunDir(tmp_path).tracking)
    assert again.tracking_uri == tracker.tracking_uri
    assert again.trial_run("t1", {"norm": "dyt"}) == first  # found by its tag
    assert len(children(again)) == 1


def test_finish_deletes_orphans_tags_the_front_and_ends_runs(tracker):
    for tid in ("a", "b", "orphan"):
        tracker.trial_run(tid, {})
    tracker.end_trial("a", "COMPLETE", {"accuracy": 0.9}, {})
    tracker.finish_search({"a": "COMPLETE", "b": "FAILED"}, front=["a"],
                          metrics={"hypervolume": 1.2}, artifacts=[])
    active = {r.data.tags[TRIAL_TAG]: r for r in children(tracker)}
    assert set(active) == {"a", "b"}
    assert active["a"].data.tags["pareto"] == "true"
    assert active["b"].data.tags["pareto"] == "false"
    assert active["b"].info.status == "FAILED"
    deleted = [r for r in children(tracker, deleted=True) if r.info.lifecycle_stage == "deleted"]
    assert [r.data.tags[TRIAL_TAG] for r in deleted] == ["orphan"]
    parent = MlflowClient(tracker.tracking_uri).get_run(tracker.parent_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["hypervolume"] == 1.2


def test_keys_are_made_valid_for_mlflow():
    assert clean_key("residual@blocks.0") == "residual/blocks.0"
    assert clean_key("corruption/gaussian_noise@3") == "corruption/gaussian_noise/3"


def test_ui_binds_loopback(tmp_path, tracker):
    command = ui_command(RunDir(tmp_path).tracking, 5123)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[-1] == "5123"


def test_only_tracking_imports_mlflow():
    offenders = []
    for path in (ROOT / "minsearch").rglob("*.py"):
        if path.name == "tracking.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "mlflow" for n in names):
                offenders.append(str(path))
    assert offenders == []


@pytest.mark.slow
def test_ui_serves_on_loopback_and_stops_with_its_command(tmp_path, tracker):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.search.conftest import listening_addresses, session_processes

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "minsearch.cli.main", "ui", str(tmp_path),
                             "--port", str(port)], cwd=ROOT, start_new_session=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page:
                    assert page.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "mlflow ui did not come up"
                time.sleep(0.5)
        sessions = {proc.pid, *_children_sessions(proc.pid)}  # the server has its own session
        pids = [p for sid in sessions for p in session_processes(sid)]
        assert listening_addresses(pids) == {"127.0.0.1"}
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(session_processes(sid) for sid in sessions) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(session_processes(sid) for sid in sessions)
    finally:
        if proc.poll() is None:
            proc.kill()


def _children_sessions(pid: int) -> list[int]:
    """Sessions of the direct children of ``pid`` (the server runs in its own session)."""
    import os
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(os.getsid(int(entry.name)))
    return found
