"""The run folder: every file round-trips through RunDir, its checks write nothing, and no
other module spells one of its file names."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from minsearch.errors import UserError
from minsearch.objectives.constraint import Constraint
from minsearch.search.results import TrialRecord, front_summary, results_frame
from minsearch.search.run_dir import RunDir, Settings
from minsearch.search.space import Gene, SpaceConfig
from minsearch.tasks.config import TaskConfig
from tests.search.conftest import TINY_SPACE, TINY_TASK

ROOT = Path(__file__).resolve().parents[2]
DIRS = {"accuracy": "max", "param_bytes": "min"}
GENES = [Gene("norm", "norm", ("a", "b"), ("keep", "dyt(alpha_init=0.5)"),
              {"keep": "keep", "dyt(alpha_init=0.5)": {"name": "dyt", "alpha_init": 0.5}})]


def settings(**changes) -> Settings:
    values = dict(trials=5, directions=DIRS, constraint=Constraint("accuracy", "max", 0.02),
                  input_shape=[1, 1, 8, 8])
    return Settings(**{**values, **changes})


def test_inputs_round_trip(tmp_path):
    run = RunDir(tmp_path)
    task = TaskConfig.from_flat(dict(TINY_TASK))
    space = SpaceConfig.from_json(dict(TINY_SPACE, sampler={"name": "tpe",
                                                            "n_startup_trials": 3},
                                       plugins=["tests.search.plugins.trial_log"]))
    run.write_inputs(task, space, GENES)
    assert run.read_task() == task
    assert run.read_space() == space
    assert run.read_genes() == GENES
    assert run.read_genes()[0].specs == GENES[0].specs


def test_settings_round_trip_with_the_constraint(tmp_path):
    run = RunDir(tmp_path)
    original = settings(constraint=Constraint("loss", "min", None), status="running",
                        parent={"epochs": 2}, orphans={"7": "orphaned"})
    run.write_settings(original)
    assert run.read_settings() == original
    assert run.is_run() and RunDir.open(tmp_path) == run


def test_records_and_results_round_trip_with_booleans_parsed_once(tmp_path):
    run = RunDir(tmp_path)
    records = [TrialRecord("00001", {"norm": "keep"}, state="COMPLETE", baseline=True,
                           number=1, objectives={"accuracy": 0.9, "param_bytes": 100.0}),
               TrialRecord("00002", {"norm": "dyt"}, state="FAILED", number=2,
                           reason="Diverged")]
    run.write_records(records)
    assert run.read_records() == records
    frame = results_frame(records, ["norm"], DIRS, Constraint("accuracy", "max", 0.02))
    run.write_results(frame, front_summary(frame, DIRS))
    back = run.read_results()
    assert back["trial_id"].tolist() == ["00001", "00002"]  # ids stay text
    for column in ("baseline", "feasible", "pareto"):
        assert back[column].dtype == bool and back[column].tolist() == frame[column].tolist()
    assert math.isnan(back.loc[1, "accuracy"]) and back.loc[1, "reason"] == "Diverged"
    assert run.read_front_summary()["front"] == ["00001"]


def test_report_files(tmp_path):
    run = RunDir(tmp_path)
    assert run.write_report({"a": 1}, "# md\n") == run.report_md
    assert run.report_md.read_text() == "# md\n" and run.report_json.is_file()


def test_paths_live_in_the_folder(tmp_path):
    run = RunDir(tmp_path / "r")
    paths = [run.task_yaml, run.space_yaml, run.genes_json, run.settings_json, run.parent_dir,
             run.tune_dir, run.study_db, run.records_json, run.results_csv, run.front_csv,
             run.front_json, run.front_png, run.front_dir, run.report_md, run.report_json,
             run.driver_json, run.tracking.state, run.tracking.store, run.tracking.artifacts,
             run.export_path("t1")]
    assert all(p.is_relative_to(run.path) or p.is_relative_to(run.path.resolve())
               for p in paths)
    assert len(set(paths)) == len(paths)
    assert run.storage_url == f"sqlite:///{(tmp_path / 'r' / 'optuna.db').resolve()}"
    assert not run.path.exists()  # naming paths creates nothing


def test_open_and_new_check_without_writing(tmp_path):
    with pytest.raises(UserError, match="is not a minsearch run folder"):
        RunDir.open(tmp_path)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        RunDir.new(a_file)
    RunDir(tmp_path / "run").create()
    RunDir(tmp_path / "run").write_settings(settings())
    with pytest.raises(UserError, match="already holds a search"):
        RunDir.new(tmp_path / "run")
    before = sorted(tmp_path.rglob("*"))
    assert RunDir.new(tmp_path / "fresh").path == tmp_path / "fresh"
    assert sorted(tmp_path.rglob("*")) == before


def _run_folder_names() -> set[str]:
    run = RunDir("X")
    paths = [run.task_yaml, run.space_yaml, run.genes_json, run.settings_json, run.study_db,
             run.records_json, run.results_csv, run.front_csv, run.front_json, run.front_png,
             run.report_md, run.report_json, run.driver_json, run.tracking.state,
             run.tracking.store, run.tracking.artifacts]
    return {p.name for p in paths}


def test_no_other_module_spells_a_run_folder_file_name():
    names = _run_folder_names()
    offenders = []
    for path in (ROOT / "minsearch").rglob("*.py"):
        if path.name == "run_dir.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                hits = {n for n in names if n == node.value or f"/{n}" in node.value}
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in hits]
    assert offenders == []
