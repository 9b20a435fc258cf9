"""The results table: states, feasibility, the front, hypervolume and its reference point."""

from __future__ import annotations

import math

import pytest

from minsearch.objectives.constraint import Constraint
from minsearch.search.results import (
    TrialRecord,
    front_summary,
    record_from_result,
    results_frame,
    trial_number,
)
from minsearch.search.run_dir import RunDir

DIRS = {"accuracy": "max", "param_bytes": "min"}
GENES = ["norm"]


def drop(limit: float | None) -> Constraint:
    return Constraint("accuracy", "max", limit)


def rec(tid, acc, size, state="COMPLETE", baseline=False, number=0, norm="dyt"):
    return TrialRecord(tid, {"norm": norm}, state=state, baseline=baseline, number=number,
                       objectives={} if state != "COMPLETE" else {"accuracy": acc,
                                                                  "param_bytes": size})


def test_record_from_result_reads_final_failed_and_early_stopped():
    final = {"accuracy": 0.9, "param_bytes": 10.0, "final": 1, "epoch": 3,
             "corruption/blur@1": 0.7, "genome": "{}"}
    done = record_from_result("a", {}, final, False, list(DIRS))
    assert done.state == "COMPLETE" and done.objectives == {"accuracy": 0.9, "param_bytes": 10.0}
    assert done.extras == {"corruption/blur@1": 0.7}
    failed = record_from_result("b", {}, {"failed": 1, "reason": "Diverged: nan"}, True, [])
    assert failed.state == "FAILED" and failed.reason == "Diverged: nan"
    crashed = record_from_result("c", {}, {}, True, [], error_text="Traceback\n  x\nOSError: boom")
    assert crashed.reason == "OSError: boom"
    stopped = record_from_result("d", {}, {"epoch": 1, "val_accuracy": 0.99}, False, list(DIRS))
    assert stopped.state == "PRUNED" and not stopped.objectives


def test_only_feasible_complete_trials_reach_the_front():
    records = [
        rec("base", 0.90, 100, baseline=True, number=1, norm="keep"),
        rec("small", 0.89, 60, number=2),  # within the drop: on the front
        rec("tiny", 0.50, 10, number=3),  # too inaccurate: infeasible, never on the front
        rec("pruned", math.nan, math.nan, state="PRUNED", number=4),
        rec("failed", math.nan, math.nan, state="FAILED", number=5),
        rec("worse", 0.88, 80, number=6),  # dominated by "small"
    ]
    frame = results_frame(records, GENES, DIRS, drop(0.02))
    assert frame["trial_id"].tolist() == ["base", "small", "tiny", "pruned", "failed", "worse"]
    front = frame.loc[frame["pareto"], "trial_id"].tolist()
    assert front == ["base", "small"]
    assert frame.set_index("trial_id").loc["tiny", "feasible"] == False  # noqa: E712
    assert frame.set_index("trial_id").loc["worse", "rank"] == 1


def test_without_a_constraint_every_complete_trial_is_feasible():
    records = [rec("base", 0.9, 100, baseline=True, norm="keep"), rec("tiny", 0.5, 10)]
    frame = results_frame(records, GENES, DIRS, drop(None))
    assert frame["pareto"].tolist() == [True, True]


def test_front_summary_states_the_reference_point_and_normalises_by_the_baseline():
    records = [rec("base", 0.8, 100, baseline=True, norm="keep"), rec("half", 0.8, 50)]
    frame = results_frame(records, GENES, DIRS, drop(None))
    summary = front_summary(frame, DIRS)
    assert summary["reference_point"] == {"accuracy": 0.0, "param_bytes": 200.0}
    assert summary["normalized_by"] == "baseline"
    # Normalised: baseline (1, 1) and "half" (1, 0.5), reference (0, 2): the baseline alone
    # covers 1 x 1, "half" dominates it and covers 1 x 1.5.
    assert summary["baseline_hypervolume"] == pytest.approx(1.0)
    assert summary["hypervolume"] == pytest.approx(1.5)
    assert summary["front"] == ["half"]


def test_results_round_trip_through_the_run_folder(tmp_path):
    records = [rec("base", 0.9, 100, baseline=True, norm="keep"), rec("x", 0.95, 90)]
    frame = results_frame(records, GENES, DIRS, drop(0.01))
    run = RunDir(tmp_path)
    run.write_results(frame, front_summary(frame, DIRS))
    back = run.read_results()
    assert back["trial_id"].tolist() == ["base", "x"]
    assert run.front_csv.read_text().count("\n") == 2  # header + "x"


def test_trial_number_comes_from_rays_experiment_tag():
    assert trial_number("12_norm=dyt,residual=keep") == 12
    assert trial_number("") == 0


def test_front_is_sorted_best_first_on_the_first_objective_in_its_direction():
    import pandas as pd

    from minsearch.search.results import sort_front

    front = pd.DataFrame({"loss": [2.2, 1.9, 2.0], "accuracy": [0.5, 0.9, 0.7]})
    assert sort_front(front, {"loss": "min", "param_bytes": "min"})["loss"].tolist() == [
        1.9, 2.0, 2.2]
    assert sort_front(front, {"accuracy": "max"})["accuracy"].tolist() == [0.9, 0.7, 0.5]
