"""A ``strategy: multifidelity`` search, run once for every test here: 2 seeds, rungs of 1 epoch
x 1 seed and 2 epochs x 2 seeds, 4 genomes; the driver is killed with SIGKILL while a
promotion sits between its two seeds (seed 0 continued from its rung checkpoint and saved,
seed 1 not trained yet), then ``minsearch resume``. The tests check the accounting over the
(genome, seed, epoch) rung checkpoints (none trained twice, none lost) and what the finished
run holds per genome: the rung each reached, top-rung means only on the front, Optuna told
each screened genome's rung-0 values once, MLflow."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.search.accounting import trainings
from tests.search.conftest import TINY_SPACE, TINY_TASK, write_yaml

pytestmark = pytest.mark.slow

SPACE = dict(TINY_SPACE, trials=4, strategy="multifidelity", reduction=2,
             rungs=[{"epochs": 1, "seeds": 1}, {"epochs": 2, "seeds": 2}])
BASELINE = {"norm": "keep", "residual": "keep"}


def _saved(run) -> dict[str, tuple[int, int]]:
    """Every rung checkpoint in the run folder: path -> (inode, mtime ns)."""
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (run / "rungs").glob("*/*.pt")}


@pytest.fixture(scope="module")
def halving_run(tmp_path_factory):
    from tests.search.conftest import Drivers

    tmp = tmp_path_factory.mktemp("multifidelity")
    task = write_yaml(tmp / "task.yaml", dict(TINY_TASK, seeds=2, epochs=2,
                                              checkpoint_seconds=0))
    space = write_yaml(tmp / "space.yaml", dict(SPACE, plugins=[
        "tests.search.plugins.trial_log", "tests.search.plugins.promotion_pause"]))
    run, log = tmp / "run", tmp / "trainings.jsonl"
    env = {"MINSEARCH_TEST_TRIAL_LOG": str(log)}
    drivers = Drivers(tmp)
    try:
        driver = drivers.start("search", str(task), "--space", str(space), "--out", str(run),
                               "--quiet", env={**env, "MINSEARCH_TEST_PROMOTION_PAUSE": "6"},
                               log=tmp / "driver.log")
        deadline = time.monotonic() + 300

        def promoting() -> list[dict]:
            return [r for r in trainings(log) if r["params"] != BASELINE and r["seed"] == 1]

        while not promoting() and driver.poll() is None:
            assert time.monotonic() < deadline, (tmp / "driver.log").read_text()[-2000:]
            time.sleep(0.1)
        time.sleep(2.5)  # the promotion's trial reaches Ray's experiment snapshot (every 1 s)
        assert driver.poll() is None, "the search ended before it could be killed"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        killed = {"at": time.time(), "saved": _saved(run), "promotion": promoting()[0]}
        code, output = drivers.run("resume", str(run), "--quiet", env=env)
    finally:
        drivers.cleanup()
    assert code == 0, output[-3000:]
    return {"run": run, "output": output, "killed": killed, "log": log}


def _key(params: dict) -> str:
    from minsearch.search.halving_searcher import genome_name

    return genome_name(params)


def _results(run) -> pd.DataFrame:
    from minsearch.search.run_dir import RunDir

    return RunDir(run).read_results()


def _values(run) -> dict[tuple[str, int, int], dict[str, float]]:
    """(genome, seed, epoch) -> objectives, over every job the finished run holds."""
    values = {}
    for job in json.loads((run / "trials.json").read_text()):
        for seed, by_epoch in job["rung_values"].items():
            for epoch, row in by_epoch.items():
                values[(_key(job["params"]), int(seed), int(epoch))] = row
    return values


def test_a_kill_mid_promotion_trains_no_genome_seed_epoch_twice_and_loses_none(halving_run):
    from minsearch.search.run_dir import RunDir

    run, killed = halving_run["run"], halving_run["killed"]
    saved = killed["saved"]
    now = _saved(run)
    assert all(now[path] == stamp for path, stamp in saved.items())  # none written again
    runs = trainings(halving_run["log"])
    newest: dict[tuple[str, int], int] = {}  # (genome, seed) -> newest epoch saved at the kill
    values = _values(run)
    store = RunDir(run)
    for genome, seed, epoch in values:
        assert str(store.rung_checkpoint(genome, seed, epoch)) in now  # none lost
        if str(store.rung_checkpoint(genome, seed, epoch)) in saved:
            newest[(genome, seed)] = max(newest.get((genome, seed), 0), epoch)
    after = [r for r in runs if r["time"] > killed["at"]]
    assert after, "the resumed search trained nothing"
    for r in after:  # a training after the kill starts where the saved rungs end
        assert r["start_epoch"] >= newest.get((_key(r["params"]), r["seed"]), 0), r
    promotion = killed["promotion"]  # its seed 0 (1 -> 2) was saved before the kill
    genome = _key(promotion["params"])
    assert str(store.rung_checkpoint(genome, 0, 2)) in saved
    again = [(r["seed"], r["start_epoch"]) for r in after if r["params"] == promotion["params"]]
    assert again == [(1, newest.get((genome, 1), 0))]  # only the seed the kill cut short, from
    # its last saved rung (epoch 0, or 1 when a loaded machine delayed the kill past its save)
    held = {store.rung_checkpoint(g, s, e) for g, s, e in values}
    known = {store.rung_checkpoint(g, 0, 1).parent for g, _, _ in values}
    for path in now:  # every saved training is in the results (but an orphan genome's: a
        # job started after Ray's last snapshot whose genome the resumed search never drew)
        assert Path(path) in held or Path(path).parent not in known, path


def test_results_are_per_genome_with_the_rung_each_reached(halving_run):
    frame = _results(halving_run["run"])
    assert frame["number"].tolist() == list(range(1, len(frame) + 1))
    genes = frame[["gene:norm", "gene:residual"]].apply(tuple, axis=1)
    assert genes.is_unique and len(frame) == SPACE["trials"]  # one row per genome
    assert frame.loc[frame["baseline"], "rung"].tolist() == [1]
    top = frame[frame["rung"] == 1]
    assert (top["state"] == "COMPLETE").all() and len(top) >= 2  # a promotion finished
    assert (top["n_seeds"] == 2).all() and (top["epochs"] == 4).all()
    values = _values(halving_run["run"])
    for _, row in top.iterrows():  # the mean of the two seeds after 2 epochs: no early value
        params = {"norm": row["gene:norm"], "residual": row["gene:residual"]}
        per_seed = [values[(_key(params), s, 2)]["accuracy"] for s in (0, 1)]
        assert json.loads(row["accuracy:per_seed"]) == pytest.approx(per_seed)
        assert row["accuracy"] == pytest.approx(sum(per_seed) / 2)
    low = frame[frame["rung"] < 1]
    assert (low["state"] == "PRUNED").all() and low["accuracy"].isna().all()
    assert low["reason"].str.startswith("stopped at rung 0").all()
    assert frame.loc[frame["pareto"], "rung"].eq(1).all()  # only top-rung genomes on the front
    summary = json.loads((halving_run["run"] / "search.json").read_text())
    assert summary["status"] == "finished"


def test_optuna_and_mlflow_hold_one_outcome_per_genome(halving_run):
    import optuna
    from mlflow.tracking import MlflowClient

    run = halving_run["run"]
    frame = _results(run)
    study = optuna.load_study(study_name="minsearch", storage=f"sqlite:///{run}/optuna.db")
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states and study.user_attrs["minsearch_halving_finished"]
    assert states.count("COMPLETE") == (frame["rung"] >= 0).sum()  # each screened genome
    told = sorted(round(t.values[0], 9) for t in study.trials if t.values)
    screened = [v["accuracy"] for (_, seed, epoch), v in _values(run).items()
                if (seed, epoch) == (0, 1)]  # once, with its rung-0 value: seed 0, epoch 1
    assert told == sorted(round(a, 9) for a in screened)
    note = f"Optuna was told {len(told)} genomes' values after 1 epoch(s) x 1 seed(s)"
    assert note in (run / "report.md").read_text()  # what the importances rest on
    state = json.loads((run / "mlflow.json").read_text())
    client = MlflowClient(state["tracking_uri"])
    children = client.search_runs([state["experiment_id"]],
                                  f"tags.`mlflow.parentRunId` = '{state['parent_run_id']}'")
    assert sorted(r.data.tags["minsearch.trial_id"] for r in children) == sorted(
        frame["trial_id"])
    base = frame.loc[frame["baseline"], "trial_id"].iloc[0]
    by_trial = {r.data.tags["minsearch.trial_id"]: r for r in children}
    history = client.get_metric_history(by_trial[base].info.run_id, "accuracy_seed1")
    assert sorted(m.step for m in history) == [1, 2]  # measured at each rung epoch
    assert by_trial[base].data.tags["state"] == "COMPLETE"
    assert client.get_run(state["parent_run_id"]).info.status == "FINISHED"
