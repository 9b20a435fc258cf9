"""A search with ``seeds: 2``, run once for every test here: 4 trials (one refused by a
budget), the driver killed with SIGKILL while a trial sits between its two seeds, then
``minsearch resume``. The tests check the resume accounting (no seed trained twice, none lost,
a trial finished before the kill kept as it was, no process left, local Ray on loopback only)
and what the finished run holds: per-seed values, means and intervals, the budget refusal,
Optuna, MLflow, the front and the report. (The search trains with a cosine schedule and warmup,
so a resumed seed continues its schedule from a checkpoint.)"""

from __future__ import annotations

import json
import os
import signal
import time

import pandas as pd
import pytest

from tests.search.accounting import finished_records, trainings
from tests.search.conftest import (
    TINY_SPACE,
    TINY_TASK,
    listening_addresses,
    session_processes,
    write_yaml,
)

pytestmark = pytest.mark.slow

SEEDS = [0, 1]
# norm keep/identity x residual keep/layerscale: all four genomes, each once. LayerScale adds
# 4 x 32 weights to the baseline's 106,152 bytes: (keep, layerscale) is over the budget;
# identity drops 5 norms' 320 weights, so (identity, layerscale) is under it.
SPACE = dict(TINY_SPACE, trials=4, genes=[
    {"kind": "norm", "tie": "kind", "options": ["keep", "identity"]},
    {"kind": "residual", "tie": "kind", "options": ["keep", "layerscale"]}])
BUDGET = 106_152


@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory):
    from tests.search.conftest import Drivers

    tmp = tmp_path_factory.mktemp("seeds")
    task = write_yaml(tmp / "task.yaml", dict(TINY_TASK, seeds=2, checkpoint_seconds=0,
                                              max_param_bytes=BUDGET, max_accuracy_drop=0.05,
                                              schedule="cosine", warmup=0.2))
    space = write_yaml(tmp / "space.yaml", dict(SPACE, plugins=[
        "tests.search.plugins.trial_log", "tests.search.plugins.seed_pause"]))
    run, log = tmp / "run", tmp / "trainings.jsonl"
    env = {"MINSEARCH_TEST_TRIAL_LOG": str(log), "MINSEARCH_TEST_SEED_PAUSE": "4"}
    drivers = Drivers(tmp)
    try:
        driver = drivers.start("search", str(task), "--space", str(space), "--out", str(run),
                               "--quiet", env=env, log=tmp / "driver.log")
        deadline = time.monotonic() + 300
        while not any(r["seed"] == 1 for r in trainings(log)) and driver.poll() is None:
            assert time.monotonic() < deadline, (tmp / "driver.log").read_text()[-2000:]
            time.sleep(0.1)
        time.sleep(2.5)  # seed 0's checkpoint reaches Ray's experiment snapshot (every 1 s)
        assert driver.poll() is None, "the search ended before it could be killed"
        listening = listening_addresses(session_processes(driver.pid))
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        killed = {"at": time.time(), "listening": listening,
                  "done": {r["trial_id"]: r["objectives"] for r in finished_records(run)},
                  "between": {r["trial_id"] for r in trainings(log) if r["seed"] == 1}}
        code, output = drivers.run("resume", str(run), "--quiet", env=env)
        time.sleep(1)
        left = [pid for sid in drivers.sessions for pid in session_processes(sid)]
    finally:
        drivers.cleanup()
    assert code == 0, output[-3000:]
    return {"run": run, "output": output, "front": _front(run), "killed": killed, "left": left,
            "front_json": json.loads(_front(run, "--json")), "log": log}


def _front(run, *flags: str) -> str:
    """``minsearch front RUN [flags]``, in this process (a new one costs seconds)."""
    import contextlib
    import io

    from minsearch.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["front", str(run), *flags]) == 0
    return out.getvalue()


def _results(run) -> pd.DataFrame:
    from minsearch.search.run_dir import RunDir

    return RunDir(run).read_results().set_index("trial_id")


def test_a_kill_between_seeds_trains_no_seed_twice_and_loses_none(seeded_run):
    killed, runs = seeded_run["killed"], trainings(seeded_run["log"])
    between = killed["between"] - killed["done"].keys()
    assert between, "no trial was between its seeds at the kill"
    after = [r for r in runs if r["time"] > killed["at"]]
    for trial_id in between:  # seed 0 kept from its checkpoint
        assert [r["seed"] for r in after if r["trial_id"] == trial_id] == [1], after
    for trial_id in killed["done"]:  # finished before the kill: trained no more
        assert not [r for r in after if r["trial_id"] == trial_id]
    frame = _results(seeded_run["run"])
    for trial_id, before in killed["done"].items():  # kept as they were
        assert frame.loc[trial_id, "accuracy"] == pytest.approx(before["accuracy"])
    settings = json.loads((seeded_run["run"] / "search.json").read_text())
    assert len(settings["orphans"]) <= 2 and settings["status"] == "finished"
    for trial_id in frame.index[frame["state"] == "COMPLETE"]:
        for seed in SEEDS:  # once, or a start the kill cut short and one after it
            starts = [r for r in runs if r["trial_id"] == trial_id and r["seed"] == seed]
            assert 1 <= len(starts) <= 2, (trial_id, seed, starts)
            assert len(starts) == 1 or starts[0]["time"] < killed["at"] < starts[1]["time"]


def test_no_process_outlives_the_killed_driver_and_local_ray_listens_on_loopback(seeded_run):
    listening = seeded_run["killed"]["listening"]  # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    assert listening and listening <= {"127.0.0.1", "::1"}, listening
    assert seeded_run["left"] == []


def test_every_trained_trial_carries_per_seed_values_means_and_intervals(seeded_run):
    frame = _results(seeded_run["run"])
    done = frame[frame["state"] == "COMPLETE"]
    assert len(done) == 3 and (done["n_seeds"] == 2).all() and (done["held_out"] == 120).all()
    for _, row in done.iterrows():
        per_seed = json.loads(row["accuracy:per_seed"])
        assert len(per_seed) == 2 and row["accuracy"] == pytest.approx(sum(per_seed) / 2)
        assert json.loads(row["seeds"]) == SEEDS
        assert row["accuracy:lo"] <= row["accuracy"] <= row["accuracy:hi"]
        assert row["param_bytes:lo"] == row["param_bytes"] == row["param_bytes:hi"]  # exact
    assert "param_bytes:per_seed" not in frame  # a cost is measured once, not per seed
    assert set(done["feasibility"]) <= {"feasible", "uncertain", "infeasible"}
    assert (done["feasible"] == (done["feasibility"] == "feasible")).all()
    assert done.loc[done["baseline"], "feasibility"].tolist() == ["feasible"]


def test_a_genome_over_the_budget_is_refused_untrained_and_told_pruned(seeded_run):
    import optuna

    frame = _results(seeded_run["run"])
    refused = frame[frame["state"] == "PRUNED"]
    assert refused[["gene:norm", "gene:residual"]].values.tolist() == [["keep", "layerscale"]]
    reason = refused["reason"].iloc[0]
    assert reason.startswith("over budget, not trained: param_bytes 106,664 > "
                             "`max_param_bytes: 106,152`"), reason
    assert not refused["pareto"].any() and not refused["contender"].any()
    assert refused.index[0] not in {t["trial_id"] for t in trainings(seeded_run["log"])}
    study = optuna.load_study(study_name="minsearch",
                              storage=f"sqlite:///{seeded_run['run']}/optuna.db")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 3 and states.count("PRUNED") == 1
    assert "RUNNING" not in states  # the rest: FAIL for an orphan of the kill or a duplicate
    told = sorted(round(t.values[0], 9) for t in study.trials if t.values)
    assert told == sorted(round(a, 9) for a in frame.loc[frame["state"] == "COMPLETE",
                                                         "accuracy"])  # told the means


def test_mlflow_child_runs_hold_the_interval_and_every_seed(seeded_run):
    from mlflow.tracking import MlflowClient

    state = json.loads((seeded_run["run"] / "mlflow.json").read_text())
    client = MlflowClient(state["tracking_uri"])
    frame = _results(seeded_run["run"])
    children = client.search_runs([state["experiment_id"]],
                                  f"tags.`mlflow.parentRunId` = '{state['parent_run_id']}'")
    by_trial = {r.data.tags["minsearch.trial_id"]: r for r in children}
    assert sorted(by_trial) == sorted(frame.index)
    base_id = frame.index[frame["baseline"]][0]
    run = by_trial[base_id]
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "accuracy_per_seed")
    assert sorted(m.step for m in history) == SEEDS
    assert sorted(m.value for m in history) == pytest.approx(
        sorted(json.loads(frame.loc[base_id, "accuracy:per_seed"])))
    assert run.data.metrics["n_seeds"] == 2
    assert run.data.metrics["accuracy_lo"] == pytest.approx(frame.loc[base_id, "accuracy:lo"])


def test_front_and_printout_show_intervals_and_what_they_rest_on(seeded_run):
    for text in (seeded_run["output"], seeded_run["front"]):
        assert "Pareto front" in text
        assert "2 seeds per trial, 120 held-out examples per measurement" in text
        assert "±" in text and "90% t-interval" in text
    members = seeded_run["front_json"]["front"]
    assert members and all(m["feasibility"] == "feasible" for m in members)
    for member in members:
        assert 0.0 <= member["stability"] <= 1.0
        assert member["intervals"]["param_bytes"][0] == member["objectives"]["param_bytes"]


def test_report_gives_verdicts_on_means_with_what_they_rest_on(seeded_run):
    report = json.loads((seeded_run["run"] / "report.json").read_text())
    rows = {(r["gene"], r["option"]): r for r in report["can_go"]}
    identity = rows[("norm", "identity")]
    assert identity["trials"] >= 1 and identity["seeds"] == 2 and identity["held_out"] == 120
    assert identity["verdict"] in ("can go", "cannot go", "not enough evidence")
    markdown = (seeded_run["run"] / "report.md").read_text()
    assert "judged on paired 90% intervals over seeds" in markdown
