"""End to end: a small search on digits through the CLI, with one injected failure (by a
trial-hook plugin the space file names).

Produces the run folder, a front, MLflow parent and children with params and metrics, the
report, and exported front weights that reproduce the measured accuracy.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from minsearch.cli.main import main
from tests.search.conftest import TINY_SPACE, session_processes, write_yaml

pytestmark = pytest.mark.slow

PLUGINS = ["tests.search.plugins.fail_when", "tests.search.plugins.slow_start",
           "tests.search.plugins.trial_log"]
SPACE = dict(TINY_SPACE, plugins=PLUGINS, genes=[
    {"kind": "norm", "tie": "kind", "options": ["keep", "identity", "dyt"]},
    {"kind": "residual", "tie": "kind", "options": ["keep", "layerscale"]},
])


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    from tests.search.conftest import TINY_TASK, Drivers

    tmp = tmp_path_factory.mktemp("e2e")
    # The recipe's schedule and distillation from the parent, through Ray trials.
    task = write_yaml(tmp / "task.yaml", dict(TINY_TASK, schedule="cosine", warmup=0.1,
                                              distill={"weight": 0.5, "temperature": 2.0}))
    space = write_yaml(tmp / "space.yaml", SPACE)
    run_dir = tmp / "run"
    drivers = Drivers(tmp)
    log = tmp / "trainings.jsonl"
    code, output = drivers.run(
        "search", str(task), "--space", str(space), "--out", str(run_dir), "--quiet",
        env={"MINSEARCH_TEST_FAIL_WHEN": json.dumps({"residual": "layerscale"}),
             "MINSEARCH_TEST_TRIAL_LOG": str(log), "MINSEARCH_TEST_TRIAL_SLEEP": "2"})
    left = [pid for sid in drivers.sessions for pid in session_processes(sid)]
    drivers.cleanup()
    return {"code": code, "output": output, "run_dir": run_dir, "left": left, "log": log}


def test_search_exits_cleanly_and_prints_the_front(search_run):
    assert search_run["code"] == 0, search_run["output"][-3000:]
    assert "Pareto front" in search_run["output"]
    assert "hypervolume" in search_run["output"]
    assert search_run["left"] == []  # no Ray process outlives the search


def test_run_folder_holds_every_result_file(search_run):
    run_dir = search_run["run_dir"]
    for name in ("task.yaml", "space.yaml", "genes.json", "search.json", "results.csv",
                 "front.csv", "front.json", "front.png", "report.md", "report.json",
                 "optuna.db", "mlflow.db"):
        assert (run_dir / name).is_file(), name
    settings = json.loads((run_dir / "search.json").read_text())
    assert settings["status"] == "finished" and settings["parent"]["epochs"] == 20


def test_results_record_every_trial_and_the_failures_reasons(search_run):
    frame = pd.read_csv(search_run["run_dir"] / "results.csv")
    assert len(frame) == 5 and frame["trial_id"].is_unique
    assert frame["number"].tolist() == [1, 2, 3, 4, 5]
    assert frame.iloc[0]["baseline"] and frame.iloc[0]["gene:norm"] == "keep"
    failing = frame["gene:residual"] == "layerscale"
    assert failing.any(), "premise: the seeded sampler proposes layerscale at least once"
    assert (frame.loc[failing, "state"] == "FAILED").all()
    assert frame.loc[failing, "reason"].str.contains("injected failure").all()
    assert (frame.loc[~failing, "state"] == "COMPLETE").all()
    done = frame[frame["state"] == "COMPLETE"]
    assert done[["accuracy", "param_bytes", "latency_ms", "robustness"]].notna().all().all()
    assert not frame.loc[frame["state"] != "COMPLETE", "pareto"].any()


def test_trials_run_side_by_side_in_two_workers(search_run):
    """``max_concurrent: 2`` on 2 CPUs: two worker processes whose trials overlap in time
    (issue 15: every trial used to run in one worker, one after another)."""
    frame = pd.read_csv(search_run["run_dir"] / "results.csv")
    done = frame[frame["state"] == "COMPLETE"]
    assert done["worker_pid"].nunique() == 2, done[["number", "worker_pid"]]
    windows = sorted(zip(done["started_at"], done["ended_at"], strict=True))
    assert all(end > start > 0 for start, end in windows)
    overlaps = [(a, b) for a, b in zip(windows, windows[1:], strict=False) if b[0] < a[1]]
    assert overlaps, windows  # some trial started before the previous one ended
    trainings = [json.loads(line) for line in search_run["log"].read_text().splitlines()]
    assert len({t["pid"] for t in trainings}) == 2 and len({t["node"] for t in trainings}) == 1


def test_front_summary_and_weights(search_run):
    run_dir = search_run["run_dir"]
    summary = json.loads((run_dir / "front.json").read_text())
    assert summary["hypervolume"] >= summary["baseline_hypervolume"] > 0
    assert summary["reference_point"]["accuracy"] == 0.0
    assert summary["counts"]["COMPLETE"] + summary["counts"]["FAILED"] == 5
    assert sorted(p.stem for p in (run_dir / "front").glob("*.pt")) == sorted(summary["front"])


def test_exported_front_member_reproduces_its_accuracy(search_run, tmp_path, capsys):
    from minsearch.search.plan import load_plan
    from minsearch.search.run_dir import RunDir
    from minsearch.tasks.candidate import load_candidate
    from minsearch.tasks.data import load_data
    from minsearch.tasks.train import evaluate

    run_dir = search_run["run_dir"]
    frame = pd.read_csv(run_dir / "results.csv")
    row = frame[frame["pareto"]].iloc[-1]
    code = main(["export", str(run_dir), "--trial", row["trial_id"], "--out",
                 str(tmp_path / "c.pt")])
    assert code == 0, capsys.readouterr().err
    blob = torch.load(tmp_path / "c.pt", weights_only=True)
    assert blob["genome"] == json.loads(row["genome"])
    model = load_candidate(tmp_path / "c.pt")
    data = load_data(load_plan(RunDir.open(run_dir)).task.data)
    assert evaluate(model, data, data.test) == pytest.approx(row["accuracy"])


def test_mlflow_parent_and_children(search_run):
    run_dir = search_run["run_dir"]
    state = json.loads((run_dir / "mlflow.json").read_text())
    client = MlflowClient(state["tracking_uri"])
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.params["sampler"] == "nsga2"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "front.csv", "front.png", "results.csv", "report.md"}
    children = client.search_runs([state["experiment_id"]],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    frame = pd.read_csv(run_dir / "results.csv").set_index("trial_id")
    assert sorted(r.data.tags["minsearch.trial_id"] for r in children) == sorted(frame.index)
    for run in children:
        row = frame.loc[run.data.tags["minsearch.trial_id"]]
        assert run.data.params == {"norm": row["gene:norm"], "residual": row["gene:residual"]}
        assert run.data.tags["pareto"] == str(bool(row["pareto"])).lower()
        if row["state"] == "COMPLETE":
            assert run.info.status == "FINISHED"
            assert run.data.metrics["accuracy"] == pytest.approx(row["accuracy"])
            history = client.get_metric_history(run.info.run_id, "val_accuracy")
            assert [m.step for m in history] == [1]
        else:
            assert run.info.status == "FAILED"
            assert "injected failure" in run.data.tags["failure_reason"]


def test_front_json_and_report_commands(search_run, capsys):
    run_dir = search_run["run_dir"]
    assert main(["front", str(run_dir), "--json"]) == 0
    front = json.loads(capsys.readouterr().out)
    assert [m["trial_id"] for m in front["front"]] == front_ids(run_dir)
    assert main(["report", str(run_dir)]) == 0
    assert "Prunable components" in capsys.readouterr().out
    report = json.loads((run_dir / "report.json").read_text())
    assert {r["option"] for r in report["can_go"]} == {"identity", "dyt", "layerscale"}
    assert report["marginal_means"]["norm"][0]["n"] >= 1


def front_ids(run_dir) -> list[str]:
    return json.loads((run_dir / "front.json").read_text())["front"]


def test_cli_errors_are_one_line(tiny_task, tmp_path, capsys):
    space = write_yaml(tmp_path / "bad.yaml", {"genes": [{"kind": "norm", "options": ["dty"]}]})
    assert main(["search", str(tiny_task), "--space", str(space), "--out",
                 str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minsearch search: error: ")
    assert "Unknown option 'dty' for norm" in err
    assert not (tmp_path / "never").exists()  # nothing trained, no run folder


def test_resume_of_a_finished_search_trains_nothing(search_run, monkeypatch, capsys):
    run_dir, log = search_run["run_dir"], search_run["log"]
    trainings = log.read_text()
    complete = pd.read_csv(run_dir / "results.csv")["state"].eq("COMPLETE").sum()
    assert trainings.count("\n") == complete  # one training run per completed trial
    monkeypatch.setenv("MINSEARCH_TEST_TRIAL_LOG", str(log))
    assert main(["resume", str(run_dir), "--quiet"]) == 0, capsys.readouterr().err[-2000:]
    assert log.read_text() == trainings
    assert len(pd.read_csv(run_dir / "results.csv")) == 5
