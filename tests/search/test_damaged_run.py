"""A damaged run folder (issue 12): a file that cannot be rebuilt is named in one line (exit 2)
and the refused command leaves the folder byte-identical; what the other records hold is
rebuilt (``trials.json`` from Ray's experiment state, ``mlflow.json`` from the MLflow store)
and the resume goes on.

One real search (3 trials) runs once for the module; every case damages a copy of it. Resuming
a finished search only finishes it again (no Ray), so most cases run in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest

from minsearch.cli.main import main
from minsearch.errors import UserError
from tests.search.conftest import TINY_SPACE, TINY_TASK, Drivers, session_processes, write_yaml

pytestmark = pytest.mark.slow

TRIALS = 3


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> dict[str, Path]:
    """The run folder of a finished search (``run``, used in place by one test only) and a
    copy of it as it was (``pristine``, which the other tests copy)."""
    tmp = tmp_path_factory.mktemp("damaged")
    task = write_yaml(tmp / "task.yaml", dict(TINY_TASK, parent_epochs=1, max_samples=300,
                                              max_concurrent=1))
    space = write_yaml(tmp / "space.yaml", dict(TINY_SPACE, trials=TRIALS))
    drivers = Drivers(tmp)
    try:
        code, output = drivers.run("search", str(task), "--space", str(space), "--out",
                                   str(tmp / "run"), "--quiet")
    finally:
        assert drivers.cleanup() == []
    assert code == 0, output[-3000:]
    shutil.copytree(tmp / "run", tmp / "pristine")
    return {"run": tmp / "run", "pristine": tmp / "pristine", "tmp": tmp}


def copy_run(src: Path, origin: Path, dst: Path) -> Path:
    """A copy at ``dst`` of the run folder ``src`` (a copy of ``origin``) that names its own
    files: the records name checkpoints, ``mlflow.json`` the store, and the store its artifacts
    by absolute path."""
    shutil.copytree(src, dst)
    for name in ("results.csv", "front.csv", "trials.json", "mlflow.json"):
        path = dst / name
        path.write_text(path.read_text().replace(str(origin.resolve()), str(dst.resolve())))
    old, new = (origin / "mlartifacts").resolve().as_uri(), (dst / "mlartifacts").resolve().as_uri()
    db = sqlite3.connect(dst / "mlflow.db")
    with db:
        db.execute("UPDATE experiments SET artifact_location = "
                   "replace(artifact_location, ?, ?)", (old, new))
        db.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)", (old, new))
    db.close()
    return dst


@pytest.fixture
def run(search, tmp_path) -> Path:
    return copy_run(search["pristine"], search["run"], tmp_path / "run")


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its content's hash (folders as such)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "folder" for p in sorted(folder.rglob("*"))}


def cut(path: Path, size: int | None = None) -> None:
    """Truncate ``path`` to ``size`` bytes (default: half)."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2 if size is None else size])


def refused(capsys, command: list[str], run: Path, culprit: str) -> str:
    """Run ``command``; assert exit 2, one line naming ``culprit``, and no change on disk."""
    before = snapshot(run)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"minsearch {command[0]}: error: {run / culprit} is damaged: "), err
    assert "Traceback" not in err
    assert snapshot(run) == before
    return err


REFUSED = [  # (file, bytes kept: None = half, words of the problem or the remedy)
    ("optuna.db", 0, "it is empty (0 bytes); the Optuna study"),
    ("optuna.db", None, "SQLite cannot read it"),
    ("mlflow.db", 0, "it is empty (0 bytes); MLflow's record"),
    ("mlflow.db", None, "SQLite cannot read it"),
    ("search.json", None, "it is cut short (not valid JSON"),
    ("genes.json", None, "it is cut short (not valid JSON"),
    ("task.yaml", None, "it is cut short"),
    ("space.yaml", None, "it is cut short"),
    ("tune/tuner.pkl", None, "it is not a complete pickle"),
    ("driver.json", None, "which processes the last driver left running is unknown"),
]


@pytest.mark.parametrize(("name", "size", "words"), REFUSED,
                         ids=[f"{n}-{'half' if s is None else s}" for n, s, _ in REFUSED])
def test_resume_refuses_a_damaged_file_and_changes_nothing(run, capsys, name, size, words):
    cut(run / name, size)
    err = refused(capsys, ["resume", str(run), "--quiet"], run, name)
    assert words in err


def test_every_damaged_file_is_named_and_nothing_is_rebuilt_when_one_is_refused(run, capsys):
    cut(run / "optuna.db", 0)
    cut(run / "trials.json")
    err = refused(capsys, ["resume", str(run), "--quiet"], run, "optuna.db")
    assert "(also damaged: trials.json)" in err


def test_a_truncated_task_file_is_caught_even_when_cut_at_a_line_break(run, capsys):
    lines = (run / "task.yaml").read_text().splitlines(keepends=True)
    (run / "task.yaml").write_text("".join(lines[:len(lines) // 2]))  # still valid YAML
    err = refused(capsys, ["resume", str(run), "--quiet"], run, "task.yaml")
    assert "it is cut short (it ends before `" in err


@pytest.mark.parametrize("command", ["front", "report", "export"])
def test_reading_commands_refuse_a_damaged_results_table(run, capsys, command):
    cut(run / "results.csv")
    extra = ["--trial", "x", "--out", str(run.parent / "x.pt")] if command == "export" else []
    err = refused(capsys, [command, str(run), *extra], run, "results.csv")
    assert f"`minsearch resume {run}` rewrites it" in err


def test_front_refuses_a_damaged_summary_and_report_a_damaged_study(run, capsys):
    cut(run / "front.json")
    refused(capsys, ["front", str(run)], run, "front.json")
    cut(run / "optuna.db", 0)
    refused(capsys, ["report", str(run)], run, "optuna.db")


def test_export_refuses_damaged_weights(run, capsys):
    front = json.loads((run / "front.json").read_text())["front"]
    weights = next((run / "tune").glob(f"*{front[0]}*/checkpoint_*/model.pt"))
    cut(weights)
    code = main(["export", str(run), "--trial", front[0], "--out", str(run.parent / "c.pt")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "model.pt is damaged: it is not a complete " \
        "PyTorch file" in err, err
    assert not (run.parent / "c.pt").exists()


def test_checking_an_intact_folder_changes_nothing(run):
    from minsearch.search.integrity import CHECKS, check_run_folder
    from minsearch.search.run_dir import RunDir

    before = snapshot(run)
    for command in CHECKS:
        assert check_run_folder(RunDir(run), command) == []
    assert snapshot(run) == before


def test_trials_json_is_rebuilt_from_rays_experiment_state(run, search, capsys):
    cut(run / "trials.json")
    assert main(["resume", str(run), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"minsearch resume: {run / 'trials.json'} was damaged: it is cut "
                          f"short") and "rebuilt it from Ray's experiment state" in err
    rebuilt = json.loads((run / "trials.json").read_text())
    original = json.loads((search["pristine"] / "trials.json").read_text())
    keys = ("trial_id", "params", "state", "objectives", "extras", "genome", "number",
            "baseline")
    assert [{k: r[k] for k in keys} for r in rebuilt] == [{k: r[k] for k in keys}
                                                          for r in original]
    assert all(r["checkpoint"].startswith(str(run.resolve())) for r in rebuilt)


def test_mlflow_json_is_rebuilt_from_the_store(run, capsys):
    original = json.loads((run / "mlflow.json").read_text())
    cut(run / "mlflow.json")
    assert main(["resume", str(run), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mlflow.json was damaged" in err, err
    assert json.loads((run / "mlflow.json").read_text()) == original


def test_a_damaged_mlflow_store_moved_aside_resumes_with_a_new_one(run, capsys):
    cut(run / "mlflow.db")
    err = refused(capsys, ["resume", str(run), "--quiet"], run, "mlflow.db")
    assert "move it and" in err and "aside" in err
    for name in ("mlflow.db", "mlflow.json"):  # what the message says to do
        (run / name).rename(run / f"{name}.damaged")
    assert main(["resume", str(run), "--quiet"]) == 0, capsys.readouterr().err
    assert json.loads((run / "search.json").read_text())["status"] == "finished"


def test_a_damaged_parent_is_retrained_by_a_resume_that_trains(run, capsys):
    from minsearch.search.integrity import check_run_folder, rebuild
    from minsearch.search.plan import load_plan
    from minsearch.search.run_dir import RunDir

    settings = json.loads((run / "search.json").read_text())
    (run / "search.json").write_text(json.dumps(dict(settings, status="running")))
    parent = next((run / "parent").glob("*.pt"))
    cut(parent)
    damaged = check_run_folder(RunDir(run), "resume")
    assert [d.path for d in damaged] == [RunDir(run).parent_dir / parent.name]
    rebuild(load_plan(RunDir(run)), damaged)
    assert not parent.exists()  # the controller's _parent trains it again
    assert "the parent is trained again" in capsys.readouterr().err


def test_a_hot_journal_is_checked_on_a_copy(tmp_path):
    """A writer killed mid-transaction leaves a hot journal; the read-only check cannot roll it
    back (SQLITE_READONLY_ROLLBACK), so it checks a copy, and the files stay as they were."""
    from minsearch.search.file_checks import sqlite_problem

    path = tmp_path / "store.db"
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE t(x)")
        db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(20000)])
    db.close()
    pid = os.fork()
    if pid == 0:  # the writer: killed inside its transaction
        try:
            writer = sqlite3.connect(path, isolation_level=None)
            writer.execute("PRAGMA cache_size=1")
            writer.execute("BEGIN")
            writer.execute("UPDATE t SET x = x + 1")
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)
    assert (tmp_path / "store.db-journal").stat().st_size > 0
    before = snapshot(tmp_path)
    assert sqlite_problem(path, ["t"], [("SELECT 1 FROM t WHERE x = 0", (), "rolled back")]) \
        is None
    assert snapshot(tmp_path) == before


def test_trials_json_is_rebuilt_before_an_unfinished_search_reads_it(search):
    """The issue's case: a driver killed during the final report (status ``running``, every
    trial done) and ``trials.json`` cut short; resume (Ray restores the experiment) rebuilds it
    and finishes. Uses the module's own folder, in place: its paths are the absolute ones."""
    run = search["run"]
    settings = json.loads((run / "search.json").read_text())
    (run / "search.json").write_text(json.dumps(dict(settings, status="running"), indent=2))
    cut(run / "trials.json")
    drivers = Drivers(search["tmp"])
    try:
        code, output = drivers.run("resume", str(run), "--quiet", timeout=300)
    finally:
        assert drivers.cleanup() == []
    assert code == 0, output[-3000:]
    assert "trials.json was damaged: it is cut short" in output
    assert "Traceback" not in output
    records = json.loads((run / "trials.json").read_text())
    assert len(records) == TRIALS and {r["state"] for r in records} == {"COMPLETE"}
    assert json.loads((run / "search.json").read_text())["status"] == "finished"
    assert [pid for sid in drivers.sessions for pid in session_processes(sid)] == []


def test_readers_name_a_damaged_file_and_write_nothing(tmp_path):
    """The readers of the run folder (used after the check, and by library callers) give the
    same one-line error; Optuna is never let write into a damaged study."""
    from minsearch.search.run_dir import DamagedFile, RunDir
    from minsearch.tracking import read_state

    run = RunDir(tmp_path)
    run.records_json.write_text('[{"trial_id": "a", "par')
    with pytest.raises(DamagedFile, match=r"trials.json is damaged: it is cut short"):
        run.read_records()
    run.genes_json.write_text("")
    with pytest.raises(DamagedFile, match=r"genes.json is damaged: it is empty"):
        run.read_genes()
    run.results_csv.write_text("")
    with pytest.raises(DamagedFile, match=r"results.csv is damaged: it is not a readable table"):
        run.read_results()
    run.study_db.write_bytes(b"")
    with pytest.raises(DamagedFile, match=r"optuna.db is damaged: it is empty \(0 bytes\)"):
        run.load_study()
    assert run.study_db.read_bytes() == b""
    run.tracking.state.write_text('{"tracking_uri": "sqlite:')
    with pytest.raises(UserError, match=r"mlflow.json is damaged: .*`minsearch resume` "
                                        r"rebuilds it"):
        read_state(run.tracking.state)
